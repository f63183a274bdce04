"""The decision engine: intake, dispatch, the pipeline, guards and their seams."""
