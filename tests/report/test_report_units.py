from aprqa.report.units import human_bytes


def test_human_bytes():
    assert human_bytes(999) == "999 B" and human_bytes(1_500_000) == "1.5 MB" and human_bytes(2.1e9) == "2.1 GB"
