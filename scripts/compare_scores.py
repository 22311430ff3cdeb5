#!/usr/bin/env python3
"""Largest absolute difference between two `afr score --raw-maps --json` output
folders: over every raw map (OUT/maps/*.npy, f32) and every image score
(OUT/scores.json). Standard library only.

Usage: compare_scores.py A_DIR B_DIR [--tolerance T]
Prints `max|diff| maps M scores S (N maps)`; exits 1 if either is above T or
the two folders do not hold the same maps.
"""
import argparse
import json
import os
import struct
import sys


def read_npy_f32(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        sys.exit(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", data[8:10])
        start = 10 + hlen
    else:
        (hlen,) = struct.unpack("<I", data[8:12])
        start = 12 + hlen
    header = data[start - hlen : start].decode("latin1")
    if "'<f4'" not in header:
        sys.exit(f"{path}: expected little-endian f32, header {header.strip()}")
    body = data[start:]
    return struct.unpack(f"<{len(body) // 4}f", body)


def scores(folder):
    with open(os.path.join(folder, "scores.json")) as f:
        report = json.load(f)
    if report["failed"]:
        sys.exit(f"{folder}: images failed: {report['failed']}")
    return {os.path.basename(r["path"]): r["score"] for r in report["results"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--tolerance", type=float)
    args = parser.parse_args()

    maps_a = sorted(os.listdir(os.path.join(args.a, "maps")))
    maps_b = sorted(os.listdir(os.path.join(args.b, "maps")))
    if maps_a != maps_b or not maps_a:
        sys.exit(f"different or no maps: {maps_a} vs {maps_b}")
    map_diff = 0.0
    for name in maps_a:
        a = read_npy_f32(os.path.join(args.a, "maps", name))
        b = read_npy_f32(os.path.join(args.b, "maps", name))
        if len(a) != len(b):
            sys.exit(f"{name}: {len(a)} values vs {len(b)}")
        map_diff = max(map_diff, max(abs(x - y) for x, y in zip(a, b)))
    sa, sb = scores(args.a), scores(args.b)
    if sa.keys() != sb.keys():
        sys.exit(f"different images scored: {sorted(sa)} vs {sorted(sb)}")
    score_diff = max(abs(sa[k] - sb[k]) for k in sa)
    print(f"max|diff| maps {map_diff:.3e} scores {score_diff:.3e} ({len(maps_a)} maps)")
    if args.tolerance is not None and max(map_diff, score_diff) > args.tolerance:
        print(f"above the tolerance {args.tolerance:g}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
