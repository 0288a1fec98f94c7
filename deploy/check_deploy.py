#!/usr/bin/env python3
"""Structure checks of deploy/compose and of what the Kubernetes JSON schemas cannot check
(run by .ci/run; needs PyYAML, which kubernetes-validate installs).

- deploy/compose/docker-compose.yml: the four services (dripgate, ledger, prometheus, grafana),
  each with an image or a build; every bind-mounted file and every secret file the trial needs
  is declared; depends_on, secrets and named volumes refer to declared ones; the Prometheus and
  Grafana provisioning files parse and point at the shipped rules and dashboard.
- deploy/kubernetes: the ServiceMonitor (a custom resource, no schema in kubernetes-validate)
  selects the admin Service and names a port it has; the grace period covers preStop sleep +
  shutdown delay + drain timeout; probes use the admin port.

Prints nothing and exits 0 when all is well; prints every finding and exits 1 otherwise.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "deploy/compose"
K8S_DIR = ROOT / "deploy/kubernetes"
# Files the operator creates before `docker compose up` (secrets); not in the repository.
OPERATOR_FILES = {"./admin-token", "./ledger-url", "./postgres-password"}

findings = []


def finding(msg):
    findings.append(msg)


def seconds(value):
    m = re.fullmatch(r"(\d+)(ms|s|m)", str(value))
    if not m:
        finding(f"cannot read duration {value!r}")
        return 0
    n, unit = int(m.group(1)), m.group(2)
    return {"ms": n / 1000, "s": n, "m": n * 60}[unit]


def check_compose():
    path = COMPOSE_DIR / "docker-compose.yml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        finding(f"{path.name}: no services mapping")
        return
    services = doc["services"]
    secrets = doc.get("secrets") or {}
    volumes = doc.get("volumes") or {}
    for name in ("dripgate", "ledger", "prometheus", "grafana"):
        if name not in services:
            finding(f"{path.name}: service {name} missing")
    for name, svc in services.items():
        if not isinstance(svc, dict):
            finding(f"{path.name}: service {name} is not a mapping")
            continue
        if "image" not in svc and "build" not in svc:
            finding(f"{path.name}: service {name} has neither image nor build")
        deps = svc.get("depends_on") or {}
        for dep in deps if isinstance(deps, (list, dict)) else []:
            if dep not in services:
                finding(f"{path.name}: {name} depends on unknown service {dep}")
        for secret in svc.get("secrets") or []:
            secret_name = secret if isinstance(secret, str) else secret.get("source")
            if secret_name not in secrets:
                finding(f"{path.name}: {name} uses undeclared secret {secret_name}")
        for mount in svc.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source")
            if source.startswith((".", "/")):
                if not (COMPOSE_DIR / source).exists():
                    finding(f"{path.name}: {name} mounts {source}, which does not exist")
            elif source not in volumes:
                finding(f"{path.name}: {name} uses undeclared volume {source}")
        for port in svc.get("ports") or []:
            if not re.fullmatch(r"(\d+\.\d+\.\d+\.\d+:)?\d+:\d+", str(port)):
                finding(f"{path.name}: {name} port {port!r} is not [ip:]host:container")
        build = svc.get("build")
        if isinstance(build, dict):
            context = COMPOSE_DIR / build.get("context", ".")
            if not (context / build.get("dockerfile", "Dockerfile")).exists():
                finding(f"{path.name}: {name} builds from a missing Dockerfile")
    for name, secret in secrets.items():
        file = (secret or {}).get("file")
        if file is None:
            finding(f"{path.name}: secret {name} has no file")
        elif file not in OPERATOR_FILES and not (COMPOSE_DIR / file).exists():
            finding(f"{path.name}: secret {name} file {file} is neither in the repository nor documented")
    env = (services.get("dripgate") or {}).get("environment") or {}
    for key in ("DRIPGATE_ADMIN__TOKEN_FILE", "DRIPGATE_LEDGER__URL_FILE"):
        if key not in env:
            finding(f"{path.name}: dripgate lacks {key}")

    prom = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    if "/etc/prometheus/dripgate.rules.yml" not in (prom.get("rule_files") or []):
        finding("prometheus.yml: the dripgate rules are not loaded")
    datasources = yaml.safe_load(
        (COMPOSE_DIR / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )
    if not any(d.get("type") == "prometheus" for d in datasources.get("datasources", [])):
        finding("grafana datasource provisioning: no prometheus data source")
    dashboards = yaml.safe_load(
        (COMPOSE_DIR / "grafana/provisioning/dashboards/dripgate.yml").read_text(encoding="utf-8")
    )
    paths = [p.get("options", {}).get("path") for p in dashboards.get("providers", [])]
    if "/var/lib/grafana/dashboards" not in paths:
        finding("grafana dashboard provisioning: not reading /var/lib/grafana/dashboards")


def load_k8s():
    objects = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                objects.append(doc)
    return objects


def check_k8s():
    objects = load_k8s()
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind"), []).append(obj)

    monitors = by_kind.get("ServiceMonitor", [])
    if len(monitors) != 1:
        finding(f"kubernetes: expected one ServiceMonitor, found {len(monitors)}")
    for mon in monitors:
        if mon.get("apiVersion") != "monitoring.coreos.com/v1":
            finding("ServiceMonitor: apiVersion is not monitoring.coreos.com/v1")
        want = mon.get("spec", {}).get("selector", {}).get("matchLabels", {})
        selected = [
            s for s in by_kind.get("Service", [])
            if want and all(s["metadata"].get("labels", {}).get(k) == v for k, v in want.items())
        ]
        if len(selected) != 1:
            finding(f"ServiceMonitor: its selector matches {len(selected)} Services, not 1")
            continue
        ports = {p.get("name") for p in selected[0]["spec"].get("ports", [])}
        for endpoint in mon.get("spec", {}).get("endpoints", []):
            if endpoint.get("port") not in ports:
                finding(f"ServiceMonitor: endpoint port {endpoint.get('port')} is not a port of the Service")
            if endpoint.get("path") != "/metrics":
                finding("ServiceMonitor: endpoint path is not /metrics")

    for deploy in by_kind.get("Deployment", []):
        pod = deploy["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        delay = seconds(env.get("DRIPGATE_SHUTDOWN__DELAY", "5s"))
        drain = seconds(env.get("DRIPGATE_SHUTDOWN__DRAIN_TIMEOUT", "25s"))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace < pre_stop + delay + drain:
            finding(
                f"Deployment: terminationGracePeriodSeconds {grace} < preStop {pre_stop} + "
                f"shutdown delay {delay} + drain timeout {drain}"
            )
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            get = container.get(probe, {}).get("httpGet", {})
            if get.get("path") != path or get.get("port") != "admin":
                finding(f"Deployment: {probe} is not GET {path} on the admin port")
        for key in ("DRIPGATE_ADMIN__TOKEN_FILE", "DRIPGATE_LEDGER__URL_FILE"):
            if key not in env:
                finding(f"Deployment: {key} is not set")
        sc = container.get("securityContext", {})
        if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                and "ALL" in sc.get("capabilities", {}).get("drop", [])
                and pod.get("securityContext", {}).get("runAsNonRoot")):
            finding("Deployment: not non-root with a read-only root filesystem and all capabilities dropped")


def main():
    check_compose()
    check_k8s()
    for msg in findings:
        print(f"deploy/check_deploy.py: {msg}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
