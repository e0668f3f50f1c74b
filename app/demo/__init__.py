"""``kairos demo``: broker, worker and synthetic traffic in one command, actions shown live."""

from app.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
