"""What the schemas cannot see in the deployment files: how the resources fit together.

    python check_manifests.py k8s RENDERED.yaml [--complete]
    python check_manifests.py compose deploy/compose.yaml

`k8s` reads kustomize's output. Every b2b process runs somewhere; every workload's container
has CPU and memory requests and limits and the locked-down security context; every
Deployment has both probes on ports it declares, a PodDisruptionBudget that selects its pods,
and either an autoscaler (and then no fixed `replicas`) or at least two replicas; every Service
selects pods; the ports the containers declare are those that BIND_ADDR and METRICS_ADDR in
the ConfigMap bind, and a NetworkPolicy lets them in. With `--complete` (an overlay) every
ConfigMap, Secret and ServiceAccount a pod names must be in the output too. `compose` checks
that every b2b process is a service of the Compose file and that every `depends_on` names a
service.

Prints each problem and exits 1 if there is any.
"""

import sys

import yaml

# The processes a deployment runs (README.md, "Processes"); `serve` is all of them in one.
PROCESSES = {"command-api", "query-api", "relay", "projector", "migrate"}


def main(argv):
    kind, path, *flags = argv
    with open(path, encoding="utf-8") as file:
        docs = [doc for doc in yaml.safe_load_all(file) if doc]
    problems = (
        check_k8s(docs, complete="--complete" in flags)
        if kind == "k8s"
        else check_compose(docs[0])
    )
    for problem in problems:
        print(f"{path}: {problem}")
    return 1 if problems else 0


def check_k8s(docs, complete):
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = by_kind.get("Deployment", [])
    workloads = deployments + by_kind.get("Job", [])
    problems = []
    ran = {
        arg for w in workloads for c in containers(w) for arg in c.get("args", [])[:1]
    }
    if ran != PROCESSES:
        problems.append(f"the workloads run {sorted(ran)}, not {sorted(PROCESSES)}")
    for workload in workloads:
        problems += [f"{name(workload)}: {p}" for p in check_pod(workload)]
    scaled = {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa
        for hpa in by_kind.get("HorizontalPodAutoscaler", [])
    }
    budgets = by_kind.get("PodDisruptionBudget", [])
    for deployment in deployments:
        problems += [
            f"{name(deployment)}: {p}"
            for p in check_deployment(deployment, scaled, budgets)
        ]
    deployment_names = {d["metadata"]["name"] for d in deployments}
    problems += [
        f"HorizontalPodAutoscaler {target} scales no Deployment"
        for target in scaled
        if target not in deployment_names
    ]
    problems += [
        f"{name(service)} selects no pods"
        for service in by_kind.get("Service", [])
        if service["spec"].get("type") != "ExternalName"
        and not any(
            selects(service["spec"]["selector"], pod_labels(d)) for d in deployments
        )
    ]
    problems += port_mismatches(deployments, by_kind)
    if complete:
        problems += missing_references(workloads, by_kind)
    return problems


def port_mismatches(deployments, by_kind):
    """The ports the containers declare are the ones the settings bind and the network lets in."""
    settings = {
        key: value
        for config in by_kind.get("ConfigMap", [])
        for key, value in config.get("data", {}).items()
    }
    bound = {
        name: int(settings[key].rsplit(":", 1)[1])
        for name, key in (("http", "BIND_ADDR"), ("metrics", "METRICS_ADDR"))
    }
    allowed = {
        port["port"]
        for policy in by_kind.get("NetworkPolicy", [])
        for rule in policy["spec"].get("ingress", [])
        for port in rule.get("ports", [])
    }
    for deployment in deployments:
        for container in containers(deployment):
            for port in container.get("ports", []):
                number = port["containerPort"]
                if bound.get(port["name"]) != number:
                    yield f"{name(deployment)}: port {port['name']} is {number}, not bound"
                if number not in allowed:
                    yield f"{name(deployment)}: no NetworkPolicy lets port {number} in"


def check_pod(workload):
    spec = workload["spec"]["template"]["spec"]
    if not spec.get("securityContext", {}).get("runAsNonRoot"):
        yield "the pod may run as root"
    for container in containers(workload):
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(bound, {}):
                    yield f"container {container['name']} has no {resource} {bound[:-1]}"
        context = container.get("securityContext", {})
        locked = (
            context.get("allowPrivilegeEscalation") is False
            and context.get("readOnlyRootFilesystem") is True
            and context.get("capabilities", {}).get("drop") == ["ALL"]
        )
        if not locked:
            yield f"container {container['name']} is not locked down"


def check_deployment(deployment, scaled, budgets):
    labels = pod_labels(deployment)
    for container in containers(deployment):
        ports = {port["name"] for port in container.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            spec = container.get(probe)
            if spec is None:
                yield f"container {container['name']} has no {probe}"
                continue
            action = spec.get("httpGet") or spec.get("tcpSocket") or {}
            port = action.get("port")
            if port not in ports:
                yield f"the {probe} of {container['name']} aims at undeclared port {port}"
    if not any(selects(b["spec"]["selector"]["matchLabels"], labels) for b in budgets):
        yield "no PodDisruptionBudget selects its pods"
    if deployment["metadata"]["name"] in scaled:
        if "replicas" in deployment["spec"]:
            yield "sets replicas although an autoscaler owns them"
    elif deployment["spec"].get("replicas", 1) < 2:
        yield "has fewer than two replicas and no autoscaler"


def missing_references(workloads, by_kind):
    present = {
        (kind, doc["metadata"]["name"])
        for kind in ("ConfigMap", "Secret", "ServiceAccount")
        for doc in by_kind.get(kind, [])
    }
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        wanted = {("ServiceAccount", spec.get("serviceAccountName", "default"))}
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    wanted.add(("ConfigMap", source["configMapRef"]["name"]))
                if "secretRef" in source:
                    wanted.add(("Secret", source["secretRef"]["name"]))
            for variable in container.get("env", []):
                secret = variable.get("valueFrom", {}).get("secretKeyRef")
                if secret:
                    wanted.add(("Secret", secret["name"]))
        for kind, wanted_name in sorted(wanted - present):
            yield f"{name(workload)} names {kind} {wanted_name}, which is not rendered"


def check_compose(compose):
    services = compose["services"]
    problems = []
    b2b = [s for s in services.values() if s.get("image") == "b2b:local"]
    ran = {s.get("command", ["(none)"])[0] for s in b2b}
    if ran != PROCESSES:
        problems.append(f"the b2b services run {sorted(ran)}, not {sorted(PROCESSES)}")
    for service_name, service in services.items():
        problems += [
            f"service {service_name} depends on {other}, which is no service"
            for other in service.get("depends_on", {})
            if other not in services
        ]
    return problems


def containers(workload):
    return workload["spec"]["template"]["spec"]["containers"]


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"].get("labels", {})


def selects(selector, labels):
    return all(labels.get(key) == value for key, value in selector.items())


def name(doc):
    return f"{doc['kind']} {doc['metadata']['name']}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
