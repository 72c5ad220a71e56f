"""Task families (built-in generators and user data files) behind one registry."""

from nlic.runtime.tasks.base import FAMILIES, Codec, Family, TaskSet

__all__ = ["FAMILIES", "Codec", "Family", "TaskSet"]
