"""Shared fixtures. Tests never touch the network: the Hub is forced offline for the session."""

from __future__ import annotations

import logging
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread in every process of the suite (read when torch is first imported, here and in
# the CLI subprocesses and Ray workers, which inherit it): pytest-xdist already runs two tests at
# once on the 2-core machine, and oversubscribed thread pools slow each other down manyfold.
# Tests that compare bytes across processes need one count everywhere, as CPU kernels sum in
# another order with another count.
os.environ.setdefault("OMP_NUM_THREADS", "1")
S3_BUCKET = "isekai-test"
# In CI every suite must run: a skip (a missing extra, no Chromium, no Ray) is reported as a failure,
# so a green CI can never hide a suite that did not run. Locally a skip stays a skip.
FAIL_ON_SKIP = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _skip_as_failure(report, what: str) -> None:
    if FAIL_ON_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{what} skipped in CI (CI=true), which counts as a failure: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _skip_as_failure(report, f"module {collector.nodeid}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _skip_as_failure(report, f"test {item.nodeid}")
    return report


@pytest.fixture(scope="session")
def isekai_cache(tmp_path_factory):
    """A per-session cache folder for tiny pipelines, also handed to subprocesses via the env."""
    path = tmp_path_factory.mktemp("isekai-cache")
    os.environ["ISEKAI_GEN_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def ray_nodes(isekai_cache):
    """A local two-node Ray cluster (``ray.cluster_utils.Cluster``: a head and one worker node,
    1 CPU each) shared by every Ray test of the session, with ``ray`` connected to it here.

    Its raylets start after ``isekai_cache`` and ``HF_HUB_OFFLINE`` are set, so every worker
    inherits them.
    """
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="WARNING")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="session")
def ray_cluster(ray_nodes):
    """The shared Ray cluster's address (``ray`` stays connected to it in this process). dev.sh runs
    pytest with ``--dist loadfile`` (a module's tests on one xdist worker), so keep the tests that
    use it in one module: each xdist worker that needs a cluster starts its own."""
    return ray_nodes.address


@pytest.fixture(scope="session")
def s3(tmp_path_factory, isekai_cache):
    """An S3 test double (moto's server mode on 127.0.0.1, an ephemeral port) holding the bucket
    ``S3_BUCKET``, configured the way users configure fsspec: ``FSSPEC_S3_*`` variables (for
    subprocesses) and ``fsspec.config.conf`` (this process; Ray actors get the filesystem pickled)."""
    fsspec = pytest.importorskip("fsspec")
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    saved_env = {name: os.environ.get(name) for name in ("FSSPEC_S3_ENDPOINT_URL", "FSSPEC_S3_KEY",
                                                         "FSSPEC_S3_SECRET", "ISEKAI_GEN_MIRRORS")}
    os.environ.update(FSSPEC_S3_ENDPOINT_URL=options["endpoint_url"], FSSPEC_S3_KEY="testing",
                      FSSPEC_S3_SECRET="testing", ISEKAI_GEN_MIRRORS=str(tmp_path_factory.mktemp("mirrors")))
    saved_conf = fsspec.config.conf.get("s3")
    fsspec.config.conf["s3"] = options
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(S3_BUCKET)
    yield fs
    if saved_conf is None:
        fsspec.config.conf.pop("s3", None)
    else:
        fsspec.config.conf["s3"] = saved_conf
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()
