"""The app on a Kubernetes target, driven by Textual's pilot: two replicas, each tapped by the
agent of its node, their requests listed under their pod names, filtered by pod."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from tests.kubesim import KubeSim
from tui.sources.kube.node_session import NodeSession
from tui.sources.kube.options import KubeOptions
from tui.targets import KubeTarget
from tui.views.app import PodtapApp

pytestmark = [pytest.mark.root]

SIZE = (180, 50)


def session_options(kubeconfig: str) -> KubeOptions:
    return KubeOptions(kubeconfig=kubeconfig)


def get(ip: str, path: str) -> None:
    with urllib.request.urlopen(f"http://{ip}:8080{path}", timeout=5) as response:
        response.read()


def screen_text(app: PodtapApp) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


@pytest.mark.kubesim("--deployment", "default/web=2:8080", "--nodes", "2")
@pytest.mark.timeout(90)
async def test_the_app_shows_every_replica_of_a_deployment(kubesim: KubeSim) -> None:
    pods = sorted(kubesim.pods("default", "app=web"), key=lambda p: p.name)
    session = NodeSession(KubeTarget("deployment", "web"), session_options(str(kubesim.kubeconfig)))
    async with session:
        app = PodtapApp(session)
        async with app.run_test(size=SIZE) as pilot:
            store = app.store

            async def until(what: str, check: object) -> None:
                for _ in range(300):
                    if check():  # type: ignore[operator]
                        return
                    await pilot.pause(0.1)
                raise AssertionError(f"gave up waiting for {what}:\n{screen_text(app)}")

            await until(
                "both pods live",
                lambda: (
                    sum(
                        info.state == "live"
                        for source, info in store.sources.items()
                        if source.startswith("default/")
                    )
                    == 2
                ),
            )
            for pod in pods:
                await asyncio.to_thread(get, pod.ip, f"/hello/{pod.name}")
            await until(
                "a request from each pod",
                lambda: (
                    {c.source for c in store.visible_connections() if c.exchanges}
                    == {f"default/{p.name}" for p in pods}
                ),
            )

            agents = len(store.sources) - len(pods)

            def drawn() -> bool:
                text = screen_text(app)
                selected = app.main_screen.selected_connection
                return (
                    # Each pod and each node agent is a source; the bar counts them apart.
                    f"agents {agents}/{agents} · pods {len(pods)}/{len(pods)}" in text
                    and text.count(" default/web-") == 2  # the pod column of each row
                    and selected is not None
                    and f"GET /hello/{selected.source.partition('/')[2]} HTTP/1.1" in text
                )

            await until("both rows, the status and the selected request drawn", drawn)
            paths = {
                c.source: [e.request.path for e in c.exchanges] for c in store.visible_connections()
            }
            for pod in pods:
                assert paths[f"default/{pod.name}"] == [f"/hello/{pod.name}"]

            await pilot.press("slash", *f"~pod {pods[0].name}", "enter")
            await until(
                "the pod filter",
                lambda: (
                    [c.source for c in store.visible_connections()] == [f"default/{pods[0].name}"]
                ),
            )
            await pilot.press("q")
    await asyncio.to_thread(kubesim.wait_for, lambda: not kubesim.agent_processes(), 15)
