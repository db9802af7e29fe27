import pytest

from tui.targets import KubeTarget, LocalTarget, TargetError, parse_port, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host", LocalTarget("host")),
        ("pid/42", LocalTarget("pid", "42")),
        ("netns/blue", LocalTarget("netns", "blue")),
        ("netns//run/netns/blue", LocalTarget("netns", "/run/netns/blue")),
        ("deploy/api", KubeTarget("deployment", "api")),
        ("pod/web-0/container/app", KubeTarget("pod", "web-0", "app")),
        ("label/app=web,tier=front", KubeTarget("label", "app=web,tier=front")),
        ("svc/web", KubeTarget("service", "web")),
    ],
)
def test_targets_parse(text: str, expected: object) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text", ["", "web", "pid/abc", "pid/0", "frob/x", "pod/", "pod/a/container/", "label/app"]
)
def test_bad_targets_say_what_to_write(text: str) -> None:
    with pytest.raises(TargetError):
        parse_target(text)


@pytest.mark.parametrize("text", ["0", "65536", "99999"])
def test_ports_out_of_range(text: str) -> None:
    with pytest.raises(TargetError, match="out of range"):
        parse_port(text)


@pytest.mark.parametrize("text", ["http", "-1", "8o8o", "", "٨٠"])
def test_ports_that_are_no_number_are_not_called_out_of_range(text: str) -> None:
    with pytest.raises(TargetError, match="is not a number"):
        parse_port(text)
