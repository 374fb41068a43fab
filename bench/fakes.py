"""What an in-process benchmark hands the protocol instead of a socket and an event loop."""


class Transport:
    """Collects nothing: counts the writes."""

    def __init__(self):
        self.sent = 0

    def write(self, data):
        self.sent += 1

    def close(self):
        pass

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


class Loop:
    def time(self):
        return 0.0

    def call_later(self, *_args):
        return _Timer()


class _Timer:
    def cancel(self):
        pass
