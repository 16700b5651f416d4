import io

from labelapp.management.progress import ProgressBar


def test_log_output_prints_each_decile_once_with_rate():
    out = io.StringIO()
    bar = ProgressBar(out)
    for done in range(0, 1001, 50):
        bar("ingest", done, 1000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0%, 10%, ..., 100%
    assert lines[-1].split()[0] == "ingest" and "1,000/1,000" in lines[-1]
    assert "/s" in lines[-1]


def test_new_stage_starts_a_new_series():
    out = io.StringIO()
    bar = ProgressBar(out)
    bar("validate", 10, 10)
    bar("database", 10, 10)
    assert [line.split()[0] for line in out.getvalue().splitlines()] == ["validate", "database"]
