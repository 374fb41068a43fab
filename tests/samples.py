"""Where nova's API samples are: $NOVA_API_SAMPLES, else ../shared/nova-api-samples beside the
checkout (how CI lays it out), else /work/shared/nova-api-samples.  Missing samples are an error,
not a skip: the comparisons with nova are the point of those tests."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _find() -> Path:
    candidates = [os.environ.get("NOVA_API_SAMPLES"),
                  REPO.parent / "shared" / "nova-api-samples",
                  "/work/shared/nova-api-samples"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "servers").is_dir():
            return Path(candidate)
    raise RuntimeError("nova's API samples not found; set NOVA_API_SAMPLES (looked in %s)"
                       % ", ".join(str(c) for c in candidates if c))


SAMPLES = _find()
