"""Apply a decision to the platform, behind one interface: the names callers import.

The seam (ApplyRequest -> ApplyResult, the Actuator Protocol, the registry ACTUATORS) is defined in
controllers/actuators/base.py, each actuator in its own module of controllers/actuators/
(kubernetes, metrics, simulator, file); this module gathers their public names under the import
path the loop, the bench and the tests have always used.
"""

from __future__ import annotations

from controllers.actuators import (
    ACTUATORS,
    Actuation,
    Actuator,
    ActuatorContext,
    ApplyRequest,
    ApplyResult,
    Elector,
    Pairing,
    PoolState,
    Routing,
    build_actuator,
)
from controllers.actuators.kubernetes import (
    DS_GROUP,
    GATEWAY_GROUP,
    HTTPROUTE_WEIGHT_TOTAL,
    IP_GROUP,
    LABEL_GPU,
    LABEL_MODEL,
    LABEL_ROLE,
    LABEL_TP,
    LWS_GROUP,
    PAIRING_KEY,
    ROUTING_KEY,
    DiscoveryError,
    KubernetesActuator,
    RoutingShapeError,
    integer_weights,
    kube_api_client,
    label_scheme,
    pool_id_from_labels,
)
from controllers.actuators.metrics import DESIRED_LABELS, LABEL_VALUE_RE, MetricsActuator, label_value
from controllers.actuators.simulator import SimFleet, SimulatorActuator

__all__ = [
    "ACTUATORS", "DESIRED_LABELS", "DS_GROUP", "GATEWAY_GROUP", "HTTPROUTE_WEIGHT_TOTAL", "IP_GROUP", "LABEL_GPU",
    "LABEL_MODEL", "LABEL_ROLE", "LABEL_TP", "LABEL_VALUE_RE", "LWS_GROUP", "PAIRING_KEY", "ROUTING_KEY", "Actuation",
    "Actuator", "ActuatorContext", "ApplyRequest", "ApplyResult", "DiscoveryError", "Elector", "KubernetesActuator",
    "MetricsActuator", "Pairing", "PoolState", "Routing", "RoutingShapeError", "SimFleet", "SimulatorActuator",
    "build_actuator", "integer_weights", "kube_api_client", "label_scheme", "label_value", "pool_id_from_labels",
]
