"""The study's stages: one function per stage, ``(view, paths) -> files``, declared with
``@stage`` (``registry``) and run by ``iugc stage NAME`` (``runner``) under either orchestrator.

Each stage declares the parameters it reads; the runner hands it only those, so a stage cannot
read an undeclared value, and both orchestrators rerun it exactly when one of them changes.
"""
