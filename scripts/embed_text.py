#!/usr/bin/env python3
"""Embeds a text file in C++ as a raw string literal: embed_text.py INPUT OUTPUT NAME writes
OUTPUT, a header declaring `constexpr const char NAME[]` with INPUT's content. Used for
tracer/deploy.sh, which is kept as a readable shell script and sent to machine B by sbrun."""
import sys

src, out, name = sys.argv[1:4]
with open(src, encoding="utf-8") as f:
    text = f.read()
delim = "SBEMBED"
if f"){delim}\"" in text:
    sys.exit(f"{src} contains the raw-string delimiter ){delim}\"")
with open(out, "w", encoding="utf-8") as f:
    f.write(f"// Generated from {src} by scripts/embed_text.py: edit that file, not this one.\n"
            "#pragma once\n"
            f"constexpr const char {name}[] = R\"{delim}({text}){delim}\";\n")
