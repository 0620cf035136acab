#!/usr/bin/env python3
"""Checks that every relative link in README.md, docs/ and bench/results/ resolves: each `](path)`
target exists, relative to the file that holds it, and each `#anchor` names a heading of the
target. Run from anywhere: python3 docs/check_links.py (exit status 1 when a link is broken)."""
import os, re, sys, glob
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
files = ['README.md'] + sorted(glob.glob('docs/*.md')) + sorted(glob.glob('bench/results/*.md'))
def anchors(path):
    out = set()
    incode = False
    for line in open(path):
        if line.startswith('```'): incode = not incode; continue
        if incode: continue
        m = re.match(r'#+\s+(.*)', line)
        if m:
            t = m.group(1).strip().lower()
            t = re.sub(r'[^\w\- ]', '', t).replace(' ', '-')
            out.add(t)
    return out
bad = 0; n = 0
for f in files:
    text = open(f).read()
    text_nocode = re.sub(r'```.*?```', '', text, flags=re.S)
    for m in re.finditer(r'\]\(([^)\s]+)\)', text_nocode):
        t = m.group(1)
        if re.match(r'[a-z]+://', t) or t.startswith('mailto:'): continue
        n += 1
        path, _, anchor = t.partition('#')
        target = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if not os.path.exists(target):
            print(f'{f}: missing {t}'); bad += 1; continue
        if anchor:
            if not target.endswith('.md') or anchor not in anchors(target):
                print(f'{f}: bad anchor {t}'); bad += 1
print(f'{n} links checked, {bad} broken'); sys.exit(1 if bad else 0)
