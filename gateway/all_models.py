"""Every ORM model module, imported so ``Base.metadata`` knows all tables (migrations)."""

from gateway import models  # noqa: F401
from gateway.costing import models as costing_models  # noqa: F401
from gateway.orders import models as order_models  # noqa: F401
from gateway import reconcile_models  # noqa: F401
