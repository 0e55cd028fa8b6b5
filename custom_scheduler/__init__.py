"""custom-scheduler: a Kubernetes scheduler with one pod per node, priority preemption and gangs."""

__version__ = "0.1.0"
