"""bench/rounds.py: how a cell measured in rounds becomes one figure per server and a paired
ratio (the load report's verdicts rest on these)."""
from bench import report, rounds


def turn(n, server, rps, p99, errors=0, c=64):
    return dict(store=1000, scenario="show", server=server, concurrency=c, round=n, rps=rps,
                p50_ms=p99 / 3, p99_ms=p99, errors=errors, requests=int(rps))


def test_a_burst_in_one_round_does_not_decide_the_cell():
    rows = [turn(0, "fastnova", 100, 0.7), turn(0, "nginx", 70, 1.1),
            turn(1, "fastnova", 96, 5.6), turn(1, "nginx", 71, 1.2),        # the burst
            turn(2, "fastnova", 101, 0.6, errors=1), turn(2, "nginx", 72, 1.0)]
    fn, ng = rounds.cells(rows)
    assert fn["server"] == "fastnova" and ng["server"] == "nginx"
    assert fn["p99_ms"] == 0.7 and ng["p99_ms"] == 1.1          # medians, not means
    assert fn["rps"] == 100 and fn["rounds"] == 3 and fn["errors"] == 1
    assert "round" not in fn and "vs_nginx" not in ng
    assert fn["vs_nginx"]["p99_ms"] == [0.7 / 1.1, 5.6 / 1.2, 0.6 / 1.0]
    assert rounds.median_ratio(fn, "p99_ms") == 0.7 / 1.1
    assert rounds.median_ratio(fn, "rps") == 101 / 72           # 1.43, 1.35, 1.40


def test_ratios_pair_the_same_round_and_skip_a_missing_side():
    rows = [turn(0, "a", 10, 1), turn(0, "b", 5, 1), turn(1, "a", 30, 1), turn(2, "b", 7, 1),
            turn(3, "a", 8, 1), turn(3, "b", 0, 1)]
    assert rounds.per_round(rows, "rps", "a", "b") == [2.0]


def test_the_report_judges_p99_on_the_paired_median():
    rows = [turn(0, "fastnova", 100, 0.7), turn(0, "nginx", 70, 1.1),
            turn(1, "fastnova", 96, 5.6), turn(1, "nginx", 71, 1.2),
            turn(2, "fastnova", 101, 1.3), turn(2, "nginx", 72, 1.0)]
    res = {"runs": rounds.cells(rows)}
    text = report.targets(res)
    line = next(x for x in text.splitlines() if "p99 ≤ nginx p99, c=64" in x)
    assert "**missed**" in line and "(1 of 3 met)" in line      # median ratio 1.3 / 1.0
    rows[5]["p99_ms"] = 1.4
    line = next(x for x in report.targets({"runs": rounds.cells(rows)}).splitlines()
                if "p99 ≤ nginx p99, c=64" in x)
    assert "| met |" in line and "(2 of 3 met)" in line


def test_loadgen_rows_are_judged_on_both_the_recorded_and_the_corrected_p99():
    rows = [turn(0, "fastnova", 100, 0.2), turn(0, "nginx", 70, 0.3),
            turn(1, "fastnova", 96, 0.2), turn(1, "nginx", 71, 0.25)]
    for row, corrected in zip(rows, (1.5, 1.0, 0.4, 0.9)):
        row["corrected_p99_ms"] = corrected
    fn, _ng = rounds.cells(rows)
    assert fn["vs_nginx"]["corrected_p99_ms"] == [1.5 / 1.0, 0.4 / 0.9]
    lines = report.targets({"runs": rounds.cells(rows)}).splitlines()
    raw = next(x for x in lines if "p99 ≤ nginx p99, c=64" in x)
    corrected = next(x for x in lines if "p99 after wrk's correction ≤ nginx's, c=64" in x)
    assert "| met |" in raw and "(2 of 2 met)" in raw
    assert "(1 of 2 met)" in corrected
    # wrk's rows carry no corrected figure: no such target row appears for them
    plain = [turn(0, "fastnova", 100, 0.2), turn(0, "nginx", 70, 0.3)]
    assert "correction" not in report.targets({"runs": rounds.cells(plain)})
