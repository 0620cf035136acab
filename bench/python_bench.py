#!/usr/bin/env python3
"""The Python get path of mapkv beside a dict and LMDB's Python binding, and iteration.

    PYTHONPATH=build/python python3 bench/python_bench.py [--keys N] [--value-size B]
        [--cpp-get-ns NS]

Every lookup workload looks up the same keys, in the same shuffled order, from a Python loop
(`for k in keys: x[k]`). The target: the Python db[k] within 2x (a dict lookup + the
C++ Get); the C++ Get's figure comes from the C++ benchmark (bench/mapkv_bench, a random Get
at this size), passed as --cpp-get-ns: the installed module carries no benchmark hooks. Each
figure is the best of --repeat runs, per operation: wall-clock ns, CPU ns (time.process_time)
and operations per CPU-second. Then iteration: the time to the first key (next(iter(db))), to
the end of a keys() walk, and the growth of the peak RSS over the walk (iteration is lazy).
"""

import argparse
import os
import resource
import platform
import random
import subprocess
import sys
import tempfile
import time

import mapkv

try:
    import lmdb  # python3-lmdb
except ImportError:
    lmdb = None


def machine():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(l.split(":", 1)[1].strip() for l in out.splitlines()
                     if l.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} vCPUs, Python {platform.python_version()}"


def measure(run, ops, repeat):
    """Best (lowest) wall and CPU ns per operation of `repeat` calls of run()."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        w0, c0 = time.perf_counter_ns(), time.process_time_ns()
        run()
        w1, c1 = time.perf_counter_ns(), time.process_time_ns()
        best_wall = min(best_wall, (w1 - w0) / ops)
        best_cpu = min(best_cpu, (c1 - c0) / ops)
    return best_wall, best_cpu


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def measure_iteration(db):
    """Seconds to the first key, seconds of a whole keys() walk, and the peak RSS growth."""
    w0 = time.perf_counter()
    next(iter(db))
    first = time.perf_counter() - w0
    rss0 = peak_rss_bytes()
    w0 = time.perf_counter()
    n = sum(1 for _ in db.keys())
    walk = time.perf_counter() - w0
    assert n == len(db)
    return first, walk, peak_rss_bytes() - rss0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=100_000, help="keys in the database")
    ap.add_argument("--value-size", type=int, default=100, help="bytes per value")
    ap.add_argument("--lookups", type=int, default=1_000_000, help="lookups per run")
    ap.add_argument("--repeat", type=int, default=5, help="runs per workload (the best counts)")
    ap.add_argument("--cpp-get-ns", type=float, default=None,
                    help="CPU ns of one C++ DB::Get at this size (bench/mapkv_bench), for the "
                         "target's ratio")
    args = ap.parse_args()

    rng = random.Random(42)
    keys = [b"key%012d" % i for i in range(args.keys)]
    values = [rng.randbytes(args.value_size) for _ in range(args.keys)]
    order = [keys[rng.randrange(args.keys)] for _ in range(args.lookups)]
    ops = len(order)

    print(f"machine: {machine()}")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"{args.keys} keys of {len(keys[0])} bytes, values of {args.value_size} bytes, "
          f"{ops} random lookups per run, best of {args.repeat}")

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = dict(zip(keys, values))
        db = mapkv.open(os.path.join(tmp, "bench.mapkv"), initial_index_slots=2 * args.keys,
                        initial_file_size=64 << 20)
        with db.transaction() as t:
            for k, v in zip(keys, values):
                t[k] = v

        def loop_empty():
            for k in order:
                pass

        def loop_dict():
            for k in order:
                d[k]

        def loop_getitem():
            for k in order:
                db[k]

        def loop_get():
            get = db.get
            for k in order:
                get(k)

        def loop_txn_get():
            with db.begin() as txn:
                get = txn.get
                for k in order:
                    get(k)

        workloads = [
            ("empty loop", loop_empty),
            ("dict d[k]", loop_dict),
            ("mapkv db[k]", loop_getitem),
            ("mapkv db.get(k)", loop_get),
            ("mapkv txn.get(k) (db.begin())", loop_txn_get),
        ]

        env = None
        if lmdb is not None:
            env = lmdb.open(os.path.join(tmp, "lmdb"), map_size=1 << 32, subdir=True,
                            metasync=False, sync=False)
            with env.begin(write=True) as txn:
                for k, v in zip(keys, values):
                    txn.put(k, v)

            def loop_lmdb():
                with env.begin(buffers=False) as txn:
                    get = txn.get
                    for k in order:
                        get(k)

            workloads.append(("LMDB txn.get(k) (python3-lmdb)", loop_lmdb))

        for name, run in workloads:
            run()  # warm up: caches, page faults
            results[name] = measure(run, ops, args.repeat)
        iteration = measure_iteration(db)
        db.close()
        if env is not None:
            env.close()

    print(f"\n{'workload':34} {'ns/op':>8} {'CPU ns/op':>10} {'ops/CPU-s':>12}")
    for name, (wall, cpu) in results.items():
        print(f"{name:34} {wall:8.1f} {cpu:10.1f} {1e9 / cpu:12,.0f}")
    if lmdb is None:
        print("LMDB: not measured (python3-lmdb is not importable by this python)")

    print(f"\niteration over {args.keys} keys: next(iter(db)) {iteration[0] * 1e3:.3f} ms, "
          f"a keys() walk {iteration[1] * 1e3:.1f} ms, peak RSS growth {iteration[2] / 1e6:.1f} MB")

    dict_ns = results["dict d[k]"][1]
    get_ns = results["mapkv db[k]"][1]
    if args.cpp_get_ns is None:
        print("\ntarget: not computed (give --cpp-get-ns from bench/mapkv_bench)")
    else:
        cpp_ns = args.cpp_get_ns
        ratio = get_ns / (dict_ns + cpp_ns)
        print(f"\ntarget: db[k] <= 2 x (dict d[k] + C++ Get), CPU time: {get_ns:.1f} / "
              f"({dict_ns:.1f} + {cpp_ns:.1f}) = {ratio:.2f}x: "
              f"{'met' if ratio <= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
