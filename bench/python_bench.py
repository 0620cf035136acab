#!/usr/bin/env python3
"""The Python get path of mapkv beside a dict, the C++ Get and LMDB's Python binding.

    PYTHONPATH=build-py/src/python python3 bench/python_bench.py [--keys N] [--value-size B]

Every workload looks up the same keys, in the same shuffled order, from a Python loop
(`for k in keys: x[k]`), except the C++ one, which runs DB::Get in a C++ loop
(mapkv._bench_get_loop): the per-call cost of the engine itself. The target: the
Python db[k] within 2x (a dict lookup + the C++ Get). Each figure is the best of --repeat runs,
per operation: wall-clock ns, CPU ns (time.process_time) and operations per CPU-second.
"""

import argparse
import os
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=100_000, help="keys in the database")
    ap.add_argument("--value-size", type=int, default=100, help="bytes per value")
    ap.add_argument("--lookups", type=int, default=1_000_000, help="lookups per run")
    ap.add_argument("--repeat", type=int, default=5, help="runs per workload (the best counts)")
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

        def loop_pybind11():
            f, h = mapkv._get_through_pybind11, db
            for k in order:
                f(h, k)

        def loop_release_gil():
            f, h = mapkv._get_releasing_gil, db
            for k in order:
                f(h, k)

        def loop_cpp():
            assert mapkv._bench_get_loop(db, order, ops) == ops

        workloads = [
            ("empty loop", loop_empty),
            ("dict d[k]", loop_dict),
            ("C++ DB::Get (C++ loop)", loop_cpp),
            ("mapkv db[k]", loop_getitem),
            ("mapkv db.get(k)", loop_get),
            ("mapkv db[k], pybind11 dispatch", loop_pybind11),
            ("mapkv db[k], GIL released", loop_release_gil),
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
        db.close()
        if env is not None:
            env.close()

    print(f"\n{'workload':34} {'ns/op':>8} {'CPU ns/op':>10} {'ops/CPU-s':>12}")
    for name, (wall, cpu) in results.items():
        print(f"{name:34} {wall:8.1f} {cpu:10.1f} {1e9 / cpu:12,.0f}")
    if lmdb is None:
        print("LMDB: not measured (python3-lmdb is not importable by this python)")

    dict_ns = results["dict d[k]"][1]
    cpp_ns = results["C++ DB::Get (C++ loop)"][1]
    get_ns = results["mapkv db[k]"][1]
    ratio = get_ns / (dict_ns + cpp_ns)
    print(f"\ntarget: db[k] <= 2 x (dict d[k] + C++ Get), CPU time: {get_ns:.1f} / "
          f"({dict_ns:.1f} + {cpp_ns:.1f}) = {ratio:.2f}x: {'met' if ratio <= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
