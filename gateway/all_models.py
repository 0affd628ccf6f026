"""Every ORM model module, imported so ``Base.metadata`` knows all tables (migrations)."""

from gateway import audit as audit_models  # noqa: F401
from gateway import (
    models,  # noqa: F401
    reconcile_models,  # noqa: F401
)
from gateway import thumbnails as thumbnail_models  # noqa: F401
from gateway.auth import models as auth_models  # noqa: F401
from gateway.commitment import models as commitment_models  # noqa: F401
from gateway.costing import models as costing_models  # noqa: F401
from gateway.orders import models as order_models  # noqa: F401
