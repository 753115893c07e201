"""The agent's parts are wired at construction: the image store knows from the start which images
the tasks assigned here use (prune and rmi keep them), and the driver unpacks into that store."""

from __future__ import annotations

from pathlib import Path

from shoal.agent.base import AgentCore
from shoal.config import Config
from shoal.runtime.base import Driver


def test_the_image_store_asks_the_assigned_tasks_what_is_in_use(tmp_path: Path) -> None:
    agent = AgentCore(Config(data_dir=tmp_path, run_dir=tmp_path / "run"))
    assert isinstance(agent.driver, Driver)
    assert agent.driver.images is agent.images  # type: ignore[attr-defined]
    hello = agent.images.get("shoal/hello")  # a built-in image, made on first use
    assert agent.images.in_use is not None and not agent.images.in_use(hello.id)
    agent.executor.assigned["t1"] = {"ID": "t1", "Spec": {"ContainerSpec": {"Image": "shoal/hello"}}}
    assert agent.images.in_use(hello.id)
    assert not agent.images.in_use("sha256:" + "0" * 64)
