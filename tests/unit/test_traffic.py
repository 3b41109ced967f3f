
import pytest

from tuner.errors import InputError
from tuner.simulate.traffic import read_csv


def write(tmp_path, text):
    path = tmp_path / "traffic.csv"
    path.write_text(text)
    return path


def test_csv_is_summed_per_minute_and_gaps_count_as_zero(tmp_path):
    path = write(tmp_path, "timestamp,invocations\n"
                 "2026-11-01T00:00:00Z,100\n2026-11-01T00:00:30Z,20\n"
                 "2026-11-01T00:02:00Z,300\n2026-11-01T00:03:00Z,400\n")
    traffic = read_csv(path)
    assert traffic.invocations.tolist() == [120, 0, 300, 400]
    assert traffic.filled_minutes == 1
    assert "1 missing minutes counted as 0" in traffic.describe()


@pytest.mark.parametrize(("text", "fragment"), [
    ("time,count\n2026-11-01T00:00:00Z,1\n", "needs columns timestamp,invocations"),
    ("timestamp,invocations\nyesterday-ish,5\n", "is not a date/time"),
    ("timestamp,invocations\n2026-11-01T00:00:00Z,lots\n", "is not a number"),
    ("timestamp,invocations\n2026-11-01T00:00:00Z,-4\n", "negative"),
    ("timestamp,invocations\n2026-11-01T00:00:00Z,1\n2026-11-01T03:00:00Z,1\n", "too gappy"),
])
def test_bad_traffic_is_a_clear_error(tmp_path, text, fragment):
    with pytest.raises(InputError, match=fragment):
        read_csv(write(tmp_path, text))
