"""``memo``: a value computed on first use and kept in the instance (``cached_property``
without its lock), as the views of a space compute their posts and entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["memo"]

if TYPE_CHECKING:
    from functools import cached_property as memo
else:
    class memo:  # lower case: a decorator, like the cached_property it stands for
        """A value computed on first use and kept in the instance: ``cached_property`` without
        Python 3.11's lock, which is one per property for every instance (a worker thread
        computing one space's view would hold up the app reading another's)."""

        def __init__(self, func):
            self.func = func
            self.name = func.__name__
            self.__doc__ = func.__doc__

        def __set_name__(self, owner, name):
            self.name = name

        def __get__(self, instance, owner=None):
            if instance is None:
                return self
            value = self.func(instance)
            instance.__dict__[self.name] = value
            return value
