"""Point the ROS wheels' CMake exports at this venv's Python and numpy headers.

The kilted `ros-*` wheels were built on a manylinux image and their `*__rosidl_generator_pyExport.cmake`
files hard-code that machine's include dirs (/opt/python/cp311-cp311/...). Building our own messages
(rosidl_generate_interfaces) against them then fails with "includes non-existent path". Idempotent.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy


def main() -> int:
    prefix = Path(sys.prefix)
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    pattern = re.compile(r"/opt/python/cp\d+-cp\d+[^;\"]*?/include/python3\.\d+"
                         r"|/opt/python/[^;\"]*?numpy/[^;\"]*?include")
    fixed = 0
    for path in (prefix / "share").glob("*/cmake/*__rosidl_generator_pyExport.cmake"):
        text = path.read_text()

        def replace(match: re.Match) -> str:
            return numpy_include if "numpy" in match.group(0) else python_include

        new = pattern.sub(replace, text)
        if new != text:
            path.write_text(new)
            fixed += 1
    print(f"fix_ros_cmake_exports: {fixed} file(s) rewritten under {prefix / 'share'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
