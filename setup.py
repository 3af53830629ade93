"""Builds the optional C engine (sv2tts._native); the project's metadata is in pyproject.toml.

The extension is optional: where it cannot be built (no C compiler, not x86-64, a compiler
without OpenMP), the install still succeeds and torch runs everything instead. Which kernels
run is decided at run time from the CPU's features (module.c), not at build time.
"""
import platform

from setuptools import Extension, setup

CSRC = "sv2tts/csrc"


def extensions() -> list[Extension]:
    if platform.machine().lower() not in ("x86_64", "amd64") or platform.system() == "Windows":
        return []
    return [Extension(
        "sv2tts._native",
        sources=[f"{CSRC}/{name}.c" for name in ("module", "f32", "bf16", "int8")],
        depends=[f"{CSRC}/engine.h", f"{CSRC}/loop.h"],
        extra_compile_args=["-O3", "-fopenmp"],
        extra_link_args=["-fopenmp"],
        optional=True,
    )]


setup(ext_modules=extensions())
