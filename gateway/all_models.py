"""Every ORM model module, imported so ``Base.metadata`` knows all tables (migrations)."""

from gateway import models  # noqa: F401
