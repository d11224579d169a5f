#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests in deploy/kubernetes/ (docs/kubernetes.md).

For each overlay (single, kafka, probe):
  1. render it with the small Kustomize renderer below (only the kustomization features
     these manifests use; anything else is an error, never silently skipped), after
     copying deploy/kubernetes/ to a temporary directory with the placeholder
     tests/kubernetes/tokens.placeholder.env as each overlay's gitignored tokens.env;
  2. when a real kustomize is on this machine (`kustomize`, or `kubectl kustomize`), render
     it with that too and require the same objects (generated names compared without
     their hash suffix, which this renderer computes its own way);
  3. validate every rendered object against the Kubernetes API schemas
     (kubernetes-validate, strict: unknown fields fail) of KUBERNETES_VERSION;
  4. check the policies docs/kubernetes.md promises: resources on every container, /healthz
     probes on the processor, non-root, read-only root filesystem, capabilities dropped and
     NET_RAW added only to the probe, the ConfigMap's files equal to config/*.toml, etc.

Prints one line per object checked (and per repository-level check), then
`N passed, M failed`; exits 1 on any failure.

  python3 tests/kubernetes/validate.py              # the checks
  python3 tests/kubernetes/validate.py --render single   # print an overlay as rendered
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "kubernetes"
CONFIG_DIR = ROOT / "config"
CONFIG_FILES = ("telltale.toml", "services.toml")
PLACEHOLDER_ENV = ROOT / "tests" / "kubernetes" / "tokens.placeholder.env"
# Each overlay and the namespace it deploys into.
OVERLAYS = {"single": "telltale", "kafka": "telltale", "probe": "telltale-probe"}
# The one workload that may add a capability (NET_RAW) and escalate privileges, and so the
# one namespace that may enforce less than the "restricted" Pod Security Standard.
PROBE_OVERLAY = "probe"
KUBERNETES_VERSION = "1.33.0"
IMAGE = re.compile(r"^ghcr\.io/example/telltale:\d+\.\d+\.\d+$")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
}


class RenderError(Exception):
    pass


# --------------------------------------------------------------------------------------
# The renderer: resources, configMapGenerator (files), secretGenerator (envs), patches
# (strategic merge of maps, lists merged by their Kubernetes merge key; or JSON 6902),
# namespace, labels (pairs, metadata only). Generated ConfigMaps and Secrets get a content
# hash suffix and every reference to them in a pod spec or an Ingress is rewritten, as
# kustomize does.
# --------------------------------------------------------------------------------------

SUPPORTED_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "secretGenerator",
    "patches",
    "namespace",
    "labels",
}
# List fields merged element by element by this key (the Kubernetes strategic merge keys).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "volumeClaimTemplates": None,
}


def inside(root: pathlib.Path, path: pathlib.Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def content_hash(obj: dict) -> str:
    enc = {"kind": obj["kind"], "name": obj["metadata"]["name"], "data": obj.get("data", {})}
    if obj["kind"] == "Secret":
        enc["type"] = obj.get("type", "Opaque")
    digest = hashlib.sha256(json.dumps(enc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


def read_env_file(path: pathlib.Path) -> dict[str, str]:
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise RenderError(f"{path}:{n}: not KEY=VALUE")
        key, value = line.split("=", 1)
        out[key.strip()] = value
    return out


def strategic_merge(target, patch, field=None):
    if isinstance(patch, dict) and isinstance(target, dict):
        for key, value in patch.items():
            if key in target:
                target[key] = strategic_merge(target[key], value, key)
            else:
                target[key] = copy.deepcopy(value)
        return target
    if isinstance(patch, list) and isinstance(target, list) and MERGE_KEYS.get(field):
        key = MERGE_KEYS[field]
        for item in patch:
            match = next((t for t in target if t.get(key) == item.get(key)), None)
            if match is None:
                target.append(copy.deepcopy(item))
            else:
                strategic_merge(match, item)
        return target
    return copy.deepcopy(patch)


def json_pointer(path: str) -> list:
    if not path.startswith("/"):
        raise RenderError(f"JSON 6902 path {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json6902(obj: dict, ops: list) -> None:
    for op in ops:
        parts = json_pointer(op["path"])
        parent = obj
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise RenderError(f"JSON 6902 replace of missing {op['path']}")
                parent[last] = op["value"]
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise RenderError(f"JSON 6902 op {kind!r} is not supported by this renderer")


def matches(obj: dict, target: dict) -> bool:
    group, _, version = obj.get("apiVersion", "").rpartition("/")
    checks = {
        "kind": obj.get("kind"),
        "name": obj["metadata"].get("name"),
        "namespace": obj["metadata"].get("namespace"),
        "group": group,
        "version": version,
    }
    for key, want in target.items():
        if key not in checks:
            raise RenderError(f"patch target field {key!r} is not supported by this renderer")
        if checks[key] != want:
            return False
    return True


def build(directory: pathlib.Path) -> tuple[list[dict], dict[tuple[str, str], str]]:
    """Renders one kustomization: its objects and {(kind, generator name): final name}."""
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(k) - SUPPORTED_KEYS
    if unknown:
        raise RenderError(f"{kfile}: {sorted(unknown)} not supported by this renderer (add it, or use kustomize)")
    objs: list[dict] = []
    generated: dict[tuple[str, str], str] = {}
    for entry in k.get("resources", []):
        path = directory / entry
        if path.is_dir():
            sub_objs, sub_gen = build(path)
            objs += sub_objs
            generated.update(sub_gen)
        elif inside(directory, path):
            objs += [d for d in yaml.safe_load_all(path.read_text()) if d]
        else:
            raise RenderError(f"{kfile}: resource file {entry} is outside the kustomization root")

    new: list[dict] = []
    for gen in k.get("configMapGenerator", []):
        if set(gen) - {"name", "files"}:
            raise RenderError(f"{kfile}: configMapGenerator {sorted(set(gen) - {'name', 'files'})} not supported")
        data = {}
        for entry in gen["files"]:
            path = directory / entry
            if not inside(directory, path):
                raise RenderError(f"{kfile}: {entry}: kustomize loads no file outside the kustomization root")
            data[path.name] = path.read_text()
        new.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    for gen in k.get("secretGenerator", []):
        if set(gen) - {"name", "envs"}:
            raise RenderError(f"{kfile}: secretGenerator {sorted(set(gen) - {'name', 'envs'})} not supported")
        data = {}
        for entry in gen["envs"]:
            path = directory / entry
            if not inside(directory, path):
                raise RenderError(f"{kfile}: {entry}: kustomize loads no file outside the kustomization root")
            if not path.is_file():
                raise RenderError(f"{kfile}: {entry} is missing (copy deploy/kubernetes/tokens.env.example)")
            for key, value in read_env_file(path).items():
                data[key] = base64.b64encode(value.encode()).decode()
        new.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]}, "type": "Opaque", "data": data}
        )
    for obj in new:
        name = obj["metadata"]["name"]
        final = f"{name}-{content_hash(obj)}"
        obj["metadata"]["name"] = final
        generated[(obj["kind"], name)] = final
    objs += new

    for patch in k.get("patches", []):
        if "path" in patch:
            path = directory / patch["path"]
            if not inside(directory, path):
                raise RenderError(f"{kfile}: patch {patch['path']} is outside the kustomization root")
            text = path.read_text()
        else:
            text = patch["patch"]
        body = yaml.safe_load(text)
        target = patch.get("target")
        if isinstance(body, list):
            if not target:
                raise RenderError(f"{kfile}: a JSON 6902 patch needs a target")
            hits = [o for o in objs if matches(o, target)]
            for obj in hits:
                json6902(obj, body)
        else:
            target = target or {"kind": body["kind"], "name": body["metadata"]["name"]}
            hits = [o for o in objs if matches(o, target)]
            for obj in hits:
                strategic_merge(obj, body)
        if not hits:
            raise RenderError(f"{kfile}: patch {patch.get('path', target)} matches no resource")

    namespace = k.get("namespace")
    if namespace:
        for obj in objs:
            if obj["kind"] == "Namespace":
                obj["metadata"]["name"] = namespace
            elif obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace

    for label in k.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise RenderError(f"{kfile}: labels with includeSelectors/includeTemplates not supported")
        for obj in objs:
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
    return objs, generated


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] in WORKLOADS:
        return obj["spec"]["template"]["spec"]
    return None


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec.get("containers", [])


def rewrite_references(objs: list[dict], generated: dict[tuple[str, str], str]) -> None:
    cm = {name: final for (kind, name), final in generated.items() if kind == "ConfigMap"}
    sec = {name: final for (kind, name), final in generated.items() if kind == "Secret"}

    def fix(holder: dict, key: str, names: dict) -> None:
        if holder and holder.get(key) in names:
            holder[key] = names[holder[key]]

    for obj in objs:
        spec = pod_spec(obj)
        if spec is not None:
            for vol in spec.get("volumes", []):
                fix(vol.get("configMap"), "name", cm)
                fix(vol.get("secret"), "secretName", sec)
                for src in vol.get("projected", {}).get("sources", []):
                    fix(src.get("configMap"), "name", cm)
                    fix(src.get("secret"), "name", sec)
            for c in containers(spec):
                for env in c.get("env", []):
                    ref = env.get("valueFrom", {})
                    fix(ref.get("configMapKeyRef"), "name", cm)
                    fix(ref.get("secretKeyRef"), "name", sec)
                for env in c.get("envFrom", []):
                    fix(env.get("configMapRef"), "name", cm)
                    fix(env.get("secretRef"), "name", sec)
        if obj["kind"] == "Ingress":
            for tls in obj["spec"].get("tls", []):
                fix(tls, "secretName", sec)


def render(overlay_dir: pathlib.Path) -> tuple[list[dict], dict[tuple[str, str], str]]:
    objs, generated = build(overlay_dir)
    rewrite_references(objs, generated)
    return objs, generated


# --------------------------------------------------------------------------------------
# A real kustomize, when this machine has one: the same objects, or a failure.
# --------------------------------------------------------------------------------------


def real_kustomize() -> tuple[list[str], str] | None:
    for cmd in (["kustomize", "build"], ["kubectl", "kustomize"]):
        if shutil.which(cmd[0]):
            probe = subprocess.run(cmd[:1] + ["version"] + (["--client"] if cmd[0] == "kubectl" else []),
                                   capture_output=True, text=True)
            if probe.returncode == 0:
                return cmd, " ".join(probe.stdout.split())
    return None


def normalised(objs: list[dict], generated: dict[tuple[str, str], str]) -> dict:
    """Objects keyed by kind/namespace/name, generated names without their hash suffix."""
    suffixed = {}
    for (kind, name) in generated:
        for obj in objs:
            n = obj["metadata"]["name"]
            if obj["kind"] == kind and re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", n):
                suffixed[n] = f"{name}-HASH"
    text = json.dumps(objs, sort_keys=True)
    for real, plain in suffixed.items():
        text = text.replace(json.dumps(real), json.dumps(plain))
    out = {}
    for obj in json.loads(text):
        m = obj["metadata"]
        out[f"{obj['kind']}/{m.get('namespace', '-')}/{m['name']}"] = obj
    return out


# --------------------------------------------------------------------------------------
# Policy checks
# --------------------------------------------------------------------------------------


def duration_seconds(text: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def component(obj: dict) -> str:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


def check_workload(obj: dict, problems: list[str], secrets: dict[str, dict], config_maps: set[str]) -> None:
    spec = pod_spec(obj)
    pod_sc = spec.get("securityContext", {})
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken is not false")
    if pod_sc.get("runAsNonRoot") is not True:
        problems.append("pod securityContext.runAsNonRoot is not true")
    if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    for c in containers(spec):
        name = c["name"]
        sc = c.get("securityContext", {})
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if what not in res.get(kind, {}):
                    problems.append(f"container {name}: no resources.{kind}.{what}")
        if not IMAGE.match(c.get("image", "")):
            problems.append(f"container {name}: image {c.get('image')!r} is not ghcr.io/example/telltale:X.Y.Z")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"container {name}: runAsNonRoot is not true")
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if uid in (None, 0):
            problems.append(f"container {name}: runAsUser is unset or 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"container {name}: readOnlyRootFilesystem is not true")
        if sc.get("privileged"):
            problems.append(f"container {name}: privileged")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"container {name}: capabilities.drop lacks ALL")
        added = caps.get("add", [])
        is_probe = component(obj) == "probe" and obj["metadata"].get("namespace") == OVERLAYS[PROBE_OVERLAY]
        if is_probe:
            if added != ["NET_RAW"]:
                problems.append(f"container {name}: the probe must add exactly NET_RAW, adds {added}")
            # The image's file capability needs no_new_privs off (base/probe.yaml).
            if sc.get("allowPrivilegeEscalation") is not True:
                problems.append(f"container {name}: the probe needs allowPrivilegeEscalation: true for cap_net_raw+p")
        else:
            if added:
                problems.append(f"container {name}: adds capabilities {added} (only the probe may add NET_RAW)")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"container {name}: allowPrivilegeEscalation is not false")
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secret = secrets.get(ref["name"])
                if secret is None:
                    problems.append(f"container {name}: env {env['name']}: no Secret {ref['name']} rendered")
                elif ref["key"] not in secret.get("data", {}) and not ref.get("optional"):
                    problems.append(f"container {name}: env {env['name']}: Secret has no key {ref['key']}")
    for vol in spec.get("volumes", []):
        if "configMap" in vol and vol["configMap"]["name"] not in config_maps:
            problems.append(f"volume {vol['name']}: no ConfigMap {vol['configMap']['name']} rendered")


def check_processor(obj: dict, problems: list[str]) -> None:
    spec = pod_spec(obj)
    c = next((c for c in spec["containers"] if c["name"] == "processor"), None)
    if c is None:
        problems.append("no container named processor")
        return
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for probe in ("readinessProbe", "livenessProbe"):
        get = c.get(probe, {}).get("httpGet")
        if not get or get.get("path") != "/healthz":
            problems.append(f"{probe}: not an httpGet of /healthz")
        elif ports.get(get.get("port"), get.get("port")) != 8080:
            problems.append(f"{probe}: not on port 8080")
    args = c.get("args", [])
    if "--listen" not in args or not args[args.index("--listen") + 1].endswith(":8080"):
        problems.append("args do not --listen on :8080")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    data_dir = env.get("TELLTALE_DATA_DIR")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    claims = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
    if not data_dir or mounts.get(data_dir) not in claims:
        problems.append(f"the data dir {data_dir} (WAL and lake) is not on a volumeClaimTemplate")
    server = tomllib.loads((CONFIG_DIR / "telltale.toml").read_text()).get("server", {})
    need = duration_seconds(server.get("shutdown_timeout", "30s")) + duration_seconds(server.get("drain_grace", "0s"))
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if pre[:1] == ["sleep"]:
        need += float(pre[1])
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace < need:
        problems.append(f"terminationGracePeriodSeconds {grace} < preStop + shutdown_timeout + drain_grace ({need:g} s)")
    ann = obj["spec"]["template"]["metadata"].get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/path") != "/metrics":
        problems.append("no prometheus.io scrape annotations for /metrics")


def selects(selector: dict, labels: dict) -> bool:
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        has = expr["key"] in labels
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and labels.get(expr["key"]) in expr["values"]:
            return False
        if expr["operator"] == "Exists" and not has:
            return False
        if expr["operator"] == "DoesNotExist" and has:
            return False
    return True


def check_overlay(name: str, objs: list[dict], results: list[tuple[bool, str]]) -> None:
    import kubernetes_validate

    by_kind: dict[str, list[dict]] = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], []).append(obj)
    secrets = {o["metadata"]["name"]: o for o in by_kind.get("Secret", [])}
    config_maps = {o["metadata"]["name"] for o in by_kind.get("ConfigMap", [])}
    pods = {component(o): o["spec"]["template"]["metadata"]["labels"] for o in objs if pod_spec(o) is not None}
    workloads = {(o["kind"], o["metadata"]["name"]) for o in objs if pod_spec(o) is not None}

    for obj in objs:
        m = obj["metadata"]
        label = f"{name}: {obj['kind']} {m.get('namespace', '-')}/{m['name']}"
        problems: list[str] = []
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"schema {KUBERNETES_VERSION}: {e.message} at {'/'.join(map(str, e.path))}")
        except Exception as e:  # schema not found, bad version: a failure, not a skip
            problems.append(f"schema {KUBERNETES_VERSION}: {type(e).__name__}: {e}")
        want_ns = OVERLAYS[name]
        if obj["kind"] != "Namespace" and m.get("namespace") != want_ns:
            problems.append(f"namespace is {m.get('namespace')!r}, not {want_ns}")
        kind = obj["kind"]
        if pod_spec(obj) is not None:
            check_workload(obj, problems, secrets, config_maps)
        if kind == "StatefulSet" and m["name"] == "telltale-processor":
            check_processor(obj, problems)
        if kind == "Namespace":
            enforce = m.get("labels", {}).get("pod-security.kubernetes.io/enforce")
            want = "privileged" if name == PROBE_OVERLAY else "restricted"
            if enforce != want:
                problems.append(f"Pod Security Standard enforced is {enforce!r}, not {want!r}")
            if m["name"] != want_ns:
                problems.append(f"is not the overlay's namespace {want_ns}")
        if kind == "ConfigMap" and m["name"].startswith("telltale-config-"):
            want = {f: (CONFIG_DIR / f).read_text() for f in CONFIG_FILES}
            if obj.get("data") != want:
                problems.append(f"data differs from config/{{{','.join(CONFIG_FILES)}}}")
        if kind == "Service":
            sel = obj["spec"].get("selector", {})
            if not any(all(labels.get(k) == v for k, v in sel.items()) for labels in pods.values()):
                problems.append(f"selector {sel} matches no pod template")
        if kind == "Ingress":
            tls = obj["spec"].get("tls", [])
            if not tls or not all(t.get("secretName") for t in tls):
                problems.append("no TLS with a secretName")
            hosts = {h for t in tls for h in t.get("hosts", [])}
            services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
            for rule in obj["spec"].get("rules", []):
                if rule.get("host") not in hosts:
                    problems.append(f"host {rule.get('host')} is not covered by TLS")
                for p in rule["http"]["paths"]:
                    svc = p["backend"]["service"]
                    target = services.get(svc["name"])
                    port_names = {pp.get("name") for pp in (target or {}).get("spec", {}).get("ports", [])}
                    if target is None or svc["port"].get("name") not in port_names:
                        problems.append(f"backend {svc} is not a rendered Service port")
        if kind == "PodDisruptionBudget":
            if not selects(obj["spec"]["selector"], pods.get("processor", {})):
                problems.append("does not select the processor pods")
        if kind == "HorizontalPodAutoscaler":
            ref = obj["spec"]["scaleTargetRef"]
            if (ref["kind"], ref["name"]) not in workloads:
                problems.append(f"scaleTargetRef {ref['kind']}/{ref['name']} is not rendered")
            if not any(mt["type"] == "External" for mt in obj["spec"].get("metrics", [])):
                problems.append("no External (consumer lag) metric")
        results.append((not problems, label + ("" if not problems else ": " + "; ".join(problems))))

    # Properties of the set, not of one object.
    problems = []
    policies = by_kind.get("NetworkPolicy", [])
    if not any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    ):
        problems.append("no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rules)")
    proc_in = [
        p
        for p in policies
        if "Ingress" in p["spec"].get("policyTypes", []) and selects(p["spec"]["podSelector"], pods.get("processor", {}))
        and p["spec"].get("ingress")
    ]
    froms = json.dumps([p["spec"]["ingress"] for p in proc_in])
    if name != PROBE_OVERLAY:
        for needed in ("ingress-nginx", "simulator", "telltale-probe"):
            if needed not in froms:
                problems.append(f"no NetworkPolicy lets {needed} into the processor")
    dns = any(
        any(port.get("port") == 53 for rule in p["spec"].get("egress", []) for port in rule.get("ports", []))
        for p in policies
    )
    if not dns:
        problems.append("no NetworkPolicy allows DNS egress")
    if name == PROBE_OVERLAY:
        kinds, want_pods = ("Namespace", "Deployment", "Secret"), {"probe"}
    else:
        kinds = ("Namespace", "StatefulSet", "Deployment", "Service", "Ingress", "PodDisruptionBudget", "ConfigMap", "Secret")
        want_pods = {"processor", "simulator"}
    for kind in kinds:
        if kind not in by_kind:
            problems.append(f"no {kind} rendered")
    if set(pods) != want_pods:
        problems.append(f"workloads {sorted(pods)}: {sorted(want_pods)} expected")
    results.append((not problems, f"{name}: the overlay as a whole" + ("" if not problems else ": " + "; ".join(problems))))


def repository_checks(results: list[tuple[bool, str]]) -> None:
    for f in CONFIG_FILES:
        copy_ = K8S_DIR / "base" / "config" / f
        same = copy_.is_file() and copy_.read_bytes() == (CONFIG_DIR / f).read_bytes()
        results.append(
            (same, f"deploy/kubernetes/base/config/{f} equals config/{f}"
             + ("" if same else f" — it differs: cp config/{f} deploy/kubernetes/base/config/{f}"))
        )
    for overlay in OVERLAYS:
        rel = f"deploy/kubernetes/overlays/{overlay}/tokens.env"
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", rel], cwd=ROOT).returncode == 0
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", rel], cwd=ROOT, capture_output=True).returncode == 0
        ok = ignored and not tracked
        results.append((ok, f"{rel} is gitignored and not committed" + ("" if ok else " — it is not")))


# Each check must fail when its subject is taken away: these edits of a copy of the
# manifests must each make the checks of some overlay fail (else a check has gone blind).
def _docs(tree: pathlib.Path, rel: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((tree / rel).read_text()) if d]


def _put(tree: pathlib.Path, rel: str, docs: list[dict]) -> None:
    (tree / rel).write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _edit(rel: str, fn):
    def apply(tree: pathlib.Path) -> None:
        docs = _docs(tree, rel)
        fn(docs)
        _put(tree, rel, docs)

    return apply


def _container(docs: list[dict]) -> dict:
    return docs[0]["spec"]["template"]["spec"]["containers"][0]


MUTATIONS = [
    ("the processor's readinessProbe removed", _edit("base/processor.yaml", lambda d: _container(d).pop("readinessProbe"))),
    ("the processor's livenessProbe removed", _edit("base/processor.yaml", lambda d: _container(d).pop("livenessProbe"))),
    ("the simulator's resources removed", _edit("base/simulator.yaml", lambda d: _container(d).pop("resources"))),
    (
        "readOnlyRootFilesystem off on the processor",
        _edit("base/processor.yaml", lambda d: _container(d)["securityContext"].update(readOnlyRootFilesystem=False)),
    ),
    (
        "runAsNonRoot removed from the simulator",
        _edit(
            "base/simulator.yaml",
            lambda d: (_container(d)["securityContext"].pop("runAsNonRoot"),
                       d[0]["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")),
        ),
    ),
    (
        "NET_RAW added to the simulator",
        _edit("base/simulator.yaml", lambda d: _container(d)["securityContext"]["capabilities"].update(add=["NET_RAW"])),
    ),
    (
        "SYS_ADMIN added to the probe",
        _edit("probe/probe.yaml", lambda d: _container(d)["securityContext"]["capabilities"]["add"].append("SYS_ADMIN")),
    ),
    ("the default-deny NetworkPolicy removed", _edit("base/networkpolicies.yaml", lambda d: d.pop(0))),
    ("the probe namespace's default-deny NetworkPolicy removed", _edit("probe/networkpolicies.yaml", lambda d: d.pop(0))),
    (
        "the probe put into the processor's namespace",
        lambda tree: (tree / "overlays/probe/kustomization.yaml").write_text(
            (tree / "overlays/probe/kustomization.yaml").read_text().replace("namespace: telltale-probe", "namespace: telltale")
        ),
    ),
    ("the Ingress's TLS removed", _edit("base/ingress.yaml", lambda d: d[0]["spec"].pop("tls"))),
    (
        "the ConfigMap's services.toml changed",
        lambda tree: (tree / "base/config/services.toml").write_text("# changed\n"),
    ),
    (
        "an unknown field in the StatefulSet (schema, strict)",
        _edit("base/processor.yaml", lambda d: d[0]["spec"].update(replica=1)),
    ),
]


def self_test(tree: pathlib.Path, results: list[tuple[bool, str]]) -> None:
    for what, mutate in MUTATIONS:
        with tempfile.TemporaryDirectory(prefix="telltale-k8s-mut-") as tmp:
            copy_ = pathlib.Path(tmp) / "kubernetes"
            shutil.copytree(tree, copy_)
            mutate(copy_)
            scratch: list[tuple[bool, str]] = []
            try:
                for overlay in OVERLAYS:
                    objs, _ = render(copy_ / "overlays" / overlay)
                    check_overlay(overlay, objs, scratch)
            except (RenderError, OSError, KeyError, yaml.YAMLError) as e:
                scratch.append((False, str(e)))
            caught = [line for ok, line in scratch if not ok]
            results.append(
                (bool(caught), f"self-test: {what} fails the checks"
                 + (f" ({caught[0].split(': ', 2)[-1][:90]})" if caught else " — it DOES NOT: a check is blind"))
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--render", choices=OVERLAYS, help="print this overlay as rendered, and exit")
    args = parser.parse_args()

    results: list[tuple[bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="telltale-k8s-") as tmp:
        tree = pathlib.Path(tmp) / "kubernetes"
        # Real tokens.env files, if someone has them, are not copied, nor read.
        shutil.copytree(K8S_DIR, tree, ignore=shutil.ignore_patterns("tokens.env"))
        for overlay in OVERLAYS:
            shutil.copyfile(PLACEHOLDER_ENV, tree / "overlays" / overlay / "tokens.env")
        if args.render:
            objs, _ = render(tree / "overlays" / args.render)
            print(yaml.safe_dump_all(objs, sort_keys=False), end="")
            return 0

        repository_checks(results)
        kustomize = real_kustomize()
        for overlay in OVERLAYS:
            try:
                objs, generated = render(tree / "overlays" / overlay)
            except (RenderError, OSError, KeyError, yaml.YAMLError) as e:
                results.append((False, f"{overlay}: render: {e}"))
                continue
            if kustomize:
                cmd, version = kustomize
                proc = subprocess.run(cmd + [str(tree / "overlays" / overlay)], capture_output=True, text=True)
                if proc.returncode != 0:
                    results.append((False, f"{overlay}: {' '.join(cmd)} failed: {proc.stderr.strip()}"))
                else:
                    real = [d for d in yaml.safe_load_all(proc.stdout) if d]
                    mine_n, real_n = normalised(objs, generated), normalised(real, generated)
                    diff = sorted(set(mine_n) ^ set(real_n)) + sorted(
                        k for k in set(mine_n) & set(real_n) if mine_n[k] != real_n[k]
                    )
                    results.append(
                        (not diff, f"{overlay}: this renderer's output equals `{' '.join(cmd)}` ({version})"
                         + ("" if not diff else f" — differs in {diff}"))
                    )
            else:
                print(f"note: {overlay}: no kustomize on this machine; rendered by this script's renderer only")
            check_overlay(overlay, objs, results)
        self_test(tree, results)

    for ok, line in results:
        print(("ok    " if ok else "FAIL  ") + line)
    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
