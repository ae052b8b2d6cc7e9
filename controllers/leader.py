"""Lease-based leader election (coordination.k8s.io/v1 Lease), so only one replica acts.

Same protocol as client-go's leaderelection: the Lease's holderIdentity, leaseDurationSeconds and
renewTime say who leads until when; a candidate takes the Lease when it is absent, expired, or
already its own, by a create or a PUT carrying the read resourceVersion, so two candidates racing
for an expired Lease cannot both win (the loser gets 409 Conflict). The kubernetes package ships a
`leaderelection` module, but its LeaseLock builds its API object from the global configuration and
its `run()` blocks in its own loop with thread callbacks; here one non-blocking step,
`try_acquire_or_renew()`, is called by the controller at each interval instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, V1LeaseSpec

log = logging.getLogger("pd_planner.controller.leader")

RENEW_DEADLINE_FRACTION = 10 / 15
"""The renew deadline as a fraction of the Lease's duration: client-go's RenewDeadline / LeaseDuration (10 s / 15 s).
A holder writes only within it of its last renewal, so a write in flight (bounded by actuator.request_timeout_s)
ends before the Lease expires and another replica may take it."""


def default_identity() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


class LeaseElector:
    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_s: int = 15,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ):
        from kubernetes import client

        self._client = client
        self.api = client.CoordinationV1Api(api_client)
        self.ns, self.name, self.identity = namespace, name, identity
        self.duration_s = lease_duration_s
        self.clock = clock
        self.is_leader = False
        self.renew_deadline_s = lease_duration_s * RENEW_DEADLINE_FRACTION
        self.renewed_at: dt.datetime | None = None
        """When this candidate last took or renewed the Lease (its clock); None: not since it last lost it."""
        self.last_error = ""
        """Why the last election step failed ('' when it did not fail: leading, or another holder's Lease is valid),
        for the interval's errors (was: only a log line, the interval a plain not_leader like a healthy standby's)."""

    def probe(self) -> None:
        """Read the Lease once at start-up: HTTP 403 (Forbidden, RBAC) is a configuration error, an InputError naming
        the Lease, its namespace and the verbs the controller's ServiceAccount needs (was: one warning an interval and
        `not_leader` for ever, the controller never acting). Absent (404) is fine (the first step creates it); any
        other error is the API's, which the election steps report and survive."""
        from kubernetes.client.exceptions import ApiException

        from planner.io.errors import InputError

        try:
            self.api.read_namespaced_lease(self.name, self.ns)
        except ApiException as exc:
            if exc.status == 403:
                raise InputError(None, "leader.lease_name", (
                    f"a Lease the controller's ServiceAccount may get, create and update (coordination.k8s.io leases in "
                    f"namespace {self.ns}); reading Lease {self.ns}/{self.name} gave HTTP 403 Forbidden: grant those "
                    "verbs (controllers/deploy/rbac.yaml) or set leader.enabled false")) from None
        except Exception:  # noqa: BLE001 - not reachable now: the election steps say so and keep trying
            return

    def holds_lease(self) -> bool:
        """Whether this candidate leads and its last renewal is within the renew deadline now (checked before each write:
        client-go's leader election stops acting once its renew deadline has passed). Found in fault QA at stop 60:
        the Lease was renewed right before the writes, but each write may take actuator.request_timeout_s per attempt,
        with retries, and pools are written in sequence, so the writes could go on past the Lease."""
        if not self.is_leader or self.renewed_at is None:
            return False
        return (self.clock() - self.renewed_at).total_seconds() < self.renew_deadline_s

    def _spec(self, now: dt.datetime, acquire: dt.datetime | None, transitions: int) -> V1LeaseSpec:
        return self._client.V1LeaseSpec(
            holder_identity=self.identity, lease_duration_seconds=self.duration_s,
            acquire_time=acquire or now, renew_time=now, lease_transitions=transitions,
        )

    def try_acquire_or_renew(self) -> bool:
        """One election step; returns whether this candidate leads now. API errors mean 'not leader'."""
        from kubernetes.client.exceptions import ApiException

        now = self.clock()
        try:
            try:
                lease = self.api.read_namespaced_lease(self.name, self.ns)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                body = self._client.V1Lease(metadata=self._client.V1ObjectMeta(name=self.name, namespace=self.ns),
                                            spec=self._spec(now, None, 0))
                self.api.create_namespaced_lease(self.ns, body)
                self._set(True, now)
                return True
            spec = lease.spec or self._client.V1LeaseSpec()
            holder = spec.holder_identity
            renew: dt.datetime | str | None = spec.renew_time  # a str from API servers (and fakes) the client did not parse
            if isinstance(renew, str):
                renew = dt.datetime.fromisoformat(renew.replace("Z", "+00:00"))
            duration = spec.lease_duration_seconds or self.duration_s
            expired = renew is None or (now - renew).total_seconds() > duration
            if holder and holder != self.identity and not expired:
                self._set(False)
                return False
            mine = holder == self.identity
            transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
            lease.spec = self._spec(now, spec.acquire_time if mine else None, transitions)
            self.api.replace_namespaced_lease(self.name, self.ns, lease)  # carries resourceVersion: 409 if raced
            self._set(True, now)
            return True
        except ApiException as exc:
            raced = " (another replica wrote it first)" if exc.status == 409 else ""
            self._set(False, error=f"leader election on Lease {self.ns}/{self.name} failed: HTTP {exc.status}{raced}; not leading")
            return False
        except Exception as exc:  # noqa: BLE001 - network errors: not leading
            self._set(False, error=f"leader election on Lease {self.ns}/{self.name} failed: {exc}; not leading")
            return False

    def _set(self, leading: bool, renewed_at: dt.datetime | None = None, error: str = "") -> None:
        """Record the step's outcome: leading since a renewal at `renewed_at`, or not leading (`error`: why the step
        failed, logged and kept in `last_error`)."""
        if leading != self.is_leader:
            log.info("%s %s leadership of lease %s/%s", self.identity, "acquired" if leading else "lost", self.ns, self.name)
        if error:
            log.warning("%s", error)
        self.is_leader = leading
        self.renewed_at = renewed_at if leading else None
        self.last_error = error


class ExportGate:
    """An elector for the loop that also withdraws what this replica exports when it does not lead.

    In metrics mode HPA/KEDA read `pd_planner_desired_replicas` from Prometheus, which scrapes every
    controller replica: a replica that lost (or never had) the lease must not keep answering with
    its last values, or the query sees two series, or a stale one. The loop calls
    `try_acquire_or_renew()` at each interval; not leading -> `withdraw()` (idempotent)."""

    def __init__(self, elector: LeaseElector, withdraw: Callable[[], None]):
        self.elector = elector
        self.withdraw = withdraw

    @property
    def is_leader(self) -> bool:
        return bool(self.elector.is_leader)

    @property
    def last_error(self) -> str:
        return self.elector.last_error

    def holds_lease(self) -> bool:
        return self.elector.holds_lease()

    def try_acquire_or_renew(self) -> bool:
        leading = self.elector.try_acquire_or_renew()
        if not leading:
            self.withdraw()
        return leading
