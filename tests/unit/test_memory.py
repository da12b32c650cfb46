"""Memory a call used goes back to the system once it has ended (kioskd.memory)."""

from __future__ import annotations

import platform

import pytest

from kioskd.memory import MALLOC_TRIM, release_free_memory


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_system():
    assert MALLOC_TRIM is not None
    # Many small blocks, then every other one freed: holes glibc keeps for reuse, as a call's
    # frame buffers and packets leave them, and that no heap shrinking at the top gives back.
    blocks = [bytearray(64_000) for _ in range(2_500)]  # 160 MB, each under the mmap threshold
    before = rss_mb()
    del blocks[::2]
    kept = rss_mb()
    release_free_memory()
    after = rss_mb()
    assert before - kept < 20  # the allocator kept the holes...
    assert kept - after > 40  # ...and gave most of the 80 MB back when asked
    del blocks
