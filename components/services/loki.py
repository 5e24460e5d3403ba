"""Loki: the platform's log store, a single binary on its own volume, with retention and a log ruler."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.config import log_alert_rules, loki as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.alert_route import AlertRouteEdge
from stacks.spec import SERVICE_NAMES, StackSpec


class Loki(Service):
    """Loki on the monitoring network; Alloy pushes to `push_url`, Grafana reads `internal_url`.

    With `remote_shippers` (the HA hosts ship logs too) it also takes pushes at `remote_push_url`,
    its port published on the host's private address only.
    Log alert rules go in `rules_directory` (one file per namespace); the ruler sends what fires to
    `alertmanager_url` when one is given.
    """

    HTTP_PORT = config.HTTP_PORT

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        alertmanager: Service | None = None,
        remote_shippers: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("loki", pulumi.ResourceOptions.merge(host.placed(), opts))
        # alerts-loki: the ruler evaluates the log rules of the services this stack runs.
        self.alerts = AlertRouteEdge(self, alertmanager) if alertmanager is not None else None
        settings = config.LokiSettings(alertmanager_url=alertmanager.internal_url if alertmanager is not None else None)
        files = {config.CONFIG_PATH: config.loki_yaml(settings), f"{config.RULES_DIR}/README": config.RULES_README}
        if self.alerts is not None:
            rules = log_alert_rules.LogAlertSettings(services=frozenset(name for name in SERVICE_NAMES if spec.enabled(name)))
            if log_alert_rules.log_alert_rules(rules)["groups"]:
                files[f"{config.TENANT_RULES_DIR}/{log_alert_rules.RULES_FILE}"] = log_alert_rules.loki_rules(rules)
        self.container = ServiceContainer(
            self,
            "loki",
            spec=spec.services.loki,
            host=host,
            # Docker publishes no port of a container on internal networks only: the pushes from
            # other hosts come in over the data network, which leaves the host in an HA stack.
            networks=[host.monitoring_network, *([host.data_network] if remote_shippers else [])],
            command=[f"-config.file={config.CONFIG_PATH}"],
            volumes={"loki-data": config.DATA_DIR},
            files=files,
            # Shippers on the other hosts push here: only on the host's private address, which the
            # hosts' firewall keeps to the cluster.
            ports={config.HTTP_PORT: config.HTTP_PORT} if remote_shippers else None,
            ports_on=host.host.address if remote_shippers else None,
            # The Loki 3 image is distroless (no shell or HTTP client on its PATH): the host's probe
            # busybox asks /ready, which answers 200 once the ingester has joined its ring.
            healthcheck=http_check(f"http://127.0.0.1:{config.HTTP_PORT}/ready", tool="probe", start_period="60s"),
        )
        self.push_url = f"{self.internal_url}/loki/api/v1/push"
        self.remote_push_url = (f"http://{host.host.address}:{config.HTTP_PORT}/loki/api/v1/push"
                                if remote_shippers else None)
        # Loki serves its own /metrics on the same port.
        self.metrics_target = self.upstream
        self.rules_directory = config.TENANT_RULES_DIR
        self.register_outputs({"internal_url": self.internal_url, "push_url": self.push_url})
