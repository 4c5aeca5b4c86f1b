import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_edit_latency_benchmark_runs_at_tiny_size_on_the_cpu():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "edit_latency.py"), "--shape", "tiny", "--size", "32",
         "--steps", "2", "--device", "cpu", "--images", "3", "--directions", "2", "--batch-images", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("dbank editor (eager)") for line in lines)
    assert any(line.startswith("diffusers Pix2PixZero") for line in lines)
    assert "diffusers / dbank: first edit" in done.stdout
    assert "throughput, 3 images x 2 directions: dbank " in done.stdout and "dbank / diffusers " in done.stdout
    # 2 calls a step and one more to start the reference pass; diffusers: 3 a step
    assert "unet calls per step: dbank 2.50, diffusers 3.00 (samples per step: dbank 5.00, diffusers 6.00)" in done.stdout


def test_edit_latency_benchmark_runs_sdxl_at_tiny_size_on_the_cpu():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "edit_latency.py"), "--shape", "tiny-sdxl", "--size", "32",
         "--steps", "2", "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("dbank editor (eager)") for line in lines)
    assert any(line.startswith("diffusers SDXL generation") for line in lines)
    assert "unet calls per step: dbank 2.50 (samples 5.00); diffusers SDXL generation 1.00 (samples 2.00)" in done.stdout
    assert "dbank first edit = " in done.stdout and " SDXL generations, another direction = " in done.stdout


def test_concurrent_writers_benchmark_runs_small():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "concurrent_writers.py"), "--sentences", "8",
         "--batch-size", "4", "--writers", "1,2", "--postgres", ""],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("sqlite")]
    assert [row[1] for row in rows] == ["1", "2"] and all(float(row[2]) > 0 for row in rows)


def test_eval_throughput_benchmark_runs_small():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "eval_throughput.py"), "--photos", "2", "--edits", "3",
         "--size", "32", "--batch-size", "6"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "6 edits (2 photos x 3), 32 px" in done.stdout
    assert any(line.startswith("batched (dbank eval, batch 6)") for line in done.stdout.splitlines())
    assert any(line.startswith("one edit at a time (baseline)") for line in done.stdout.splitlines())
    assert "x faster (target >= 3x); largest score difference " in done.stdout


def test_thread_count_benchmark_runs_small():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "thread_count.py"), "--no-llm", "--sentences", "2",
         "--repeat", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("dbank's default here: ") and len(lines) == 3
    assert lines[1].startswith("1 thread(s): CLIP text encoder ") and "(1.00x the 1-thread baseline)" in lines[1]
    assert lines[2].startswith("2 thread(s): CLIP text encoder ")


def test_cli_startup_benchmark_runs_small_and_reads_sqlite_without_sqlalchemy():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cli_startup.py"), "--concepts", "3", "--hidden-size", "4",
         "--repeat", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    timed = [line for line in done.stdout.splitlines() if line.startswith(("dbank concepts", "dbank diff"))]
    assert [line.split(" s wall")[0].split()[-2] for line in timed] == ["concepts", "concept2"]
    assert all("through the Bank's rooms: " in line for line in timed)
    assert all(line.endswith("imported: neither torch nor SQLAlchemy") for line in timed)
