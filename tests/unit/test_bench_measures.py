"""The benchmarks' pure arithmetic: audio gaps from polled counters, threads' CPU by group."""

from __future__ import annotations

from bench.chromium_call import longest_concealment_ms
from bench.cpu_per_call_second import CLK_TCK, thread_group, thread_split


def polls(concealed_per_interval: list[int], played: int = 2400) -> list[tuple[float, int, int]]:
    """Polls 50 ms apart (2400 samples at 48 kHz played between each) with the given samples
    concealed in each interval."""
    out, concealed = [(0.0, 0, 0)], 0
    for n, c in enumerate(concealed_per_interval, 1):
        concealed += c
        out.append((n * 0.05, concealed, n * played))
    return out


def test_no_concealment_is_no_gap():
    assert longest_concealment_ms(polls([0, 0, 0])) == 0.0


def test_a_gap_inside_one_interval():
    assert longest_concealment_ms(polls([0, 480, 0])) == 10.0


def test_a_gap_across_intervals_adds_up_through_the_fully_concealed_ones():
    # 20 ms at the end of one interval, two whole intervals, 10 ms at the start of the next.
    assert longest_concealment_ms(polls([0, 960, 2400, 2400, 480, 0])) == 130.0


def test_partly_concealed_intervals_next_to_each_other_do_not_chain():
    # Scattered 10 ms concealments in every interval are not one long gap: at most two
    # intervals' partial concealments join (the end of one, the start of the next).
    assert longest_concealment_ms(polls([480] * 20)) == 20.0


def test_a_gap_still_running_at_the_last_poll_counts():
    assert longest_concealment_ms(polls([0, 2400, 2400])) == 100.0


def test_periods_as_samples():
    # The kiosk's speaker: (time, silent periods, all periods) at 50 periods a second.
    rows = [(0.0, 0, 0), (0.2, 0, 10), (0.4, 3, 20), (0.6, 3, 30)]
    assert longest_concealment_ms(rows, rate=50) == 60.0


def test_thread_groups():
    assert thread_group("MainThread") == "MainThread"
    assert thread_group("asyncio_3") == "asyncio executor"
    assert thread_group("screen") == "screen"
    assert thread_group("video-decoder") == "video-decoder"
    assert thread_group("audio-decoder") == "audio-decoder"
    assert thread_group("alsa playback null") == "alsa"
    assert thread_group("calllog_0") == "other"
    assert thread_group(None) == "native (no Python frames)"


def test_thread_split_counts_new_threads_from_zero_and_shows_what_ended_unseen():
    before = {1: ("python", 100), 2: ("python", 50), 3: ("python", 10)}
    after = {1: ("python", 100 + 2 * CLK_TCK), 2: ("python", 50 + CLK_TCK),
             4: ("python", CLK_TCK), 5: ("vp8dec", CLK_TCK)}  # 3 ended, 4 and 5 are new
    names = {1: "MainThread", 2: "asyncio_0", 4: "asyncio_1"}
    split = thread_split(before, after, names, wall=2.0, total_cpu_s=6.0)
    assert split["groups"] == {"MainThread": 1.0, "asyncio executor": 1.0,
                               "native (no Python frames)": 0.5}
    assert split["threads"] == {"MainThread": 1.0, "asyncio_0": 0.5, "asyncio_1": 0.5,
                                "[vp8dec]": 0.5}
    assert split["unaccounted"] == 0.5


def test_playout_gaps_are_measured_in_wall_time():
    from bench.cpu_cap import playout_polls

    # (time, silent periods, played periods), read every 0.2 s: on time (10 a read), then 3
    # silent of 10, then a thread that writes nothing for a read, then one spinning (1000
    # periods in 0.2 s, all silent): wall time, not the period count, makes the gap.
    rows = [(0.0, 0, 0), (0.2, 0, 10), (0.4, 3, 17), (0.6, 3, 17), (0.8, 1003, 17),
            (1.0, 1003, 27)]
    polls = playout_polls(rows)
    assert [round(c) for _, c, _ in polls] == [0, 0, 60, 260, 460, 460]
    assert longest_concealment_ms(polls, rate=1000) == 460.0
