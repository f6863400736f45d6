"""``songexplorer plots`` serves the PNGs under outputs/ and nothing else, and the addresses that
Dagster's pages use (``songexplorer_core.links``) point at them and at the annotator."""

import http.client
import threading

import pytest

from songexplorer_cli.plots import make_server
from songexplorer_core.links import annotator_url, place_of_interest, plot_url


@pytest.fixture
def served(tmp_path):
    outputs = tmp_path / "outputs"
    (outputs / "ethograms").mkdir(parents=True)
    (outputs / "ethograms" / "round1%2Fa.wav.png").write_bytes(b"\x89PNG fake")
    (outputs / "ethograms" / "a.parquet").write_bytes(b"not a plot")
    (tmp_path / "secret.png").write_bytes(b"outside")
    server = make_server(outputs, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield outputs, server.server_address[1]
    server.shutdown()
    server.server_close()


def get(port, path, host=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
    response = connection.getresponse()
    return response.status, response.read()


def test_a_plot_under_outputs_is_served_at_the_address_dagster_shows(served, monkeypatch):
    outputs, port = served
    monkeypatch.setenv("SONGEXPLORER_PLOTS_URL", f"http://127.0.0.1:{port}/")
    url = plot_url(outputs, outputs / "ethograms" / "round1%2Fa.wav.png")
    assert url.startswith(f"http://127.0.0.1:{port}/ethograms/round1%252Fa.wav.png?v=")
    assert get(port, url.split(str(port), 1)[1]) == (200, b"\x89PNG fake")
    assert get(port, "/ethograms/round1%252Fa.wav.png", host=f"localhost:{port}")[0] == 200


@pytest.mark.parametrize("path, host, status", [
    ("/ethograms/a.parquet", None, 404),  # not a plot
    ("/../secret.png", None, 404),  # outside outputs/
    ("/ethograms/%2E%2E/%2E%2E/secret.png", None, 404),
    ("/ethograms/", None, 404),  # no listing
    ("/ethograms/round1%252Fa.wav.png", "evil.example:80", 403),  # DNS rebinding
])
def test_nothing_else_is_served(served, path, host, status):
    _, port = served
    assert get(port, path, host)[0] == status


def test_no_plots_server_named_means_no_address(tmp_path, monkeypatch):
    monkeypatch.delenv("SONGEXPLORER_PLOTS_URL", raising=False)
    (tmp_path / "x.png").write_bytes(b"")
    assert plot_url(tmp_path, tmp_path / "x.png") is None


def test_the_annotator_link_opens_the_recording_a_second_before_the_first_sound(monkeypatch):
    monkeypatch.delenv("SONGEXPLORER_ANNOTATOR_URL", raising=False)
    monkeypatch.setenv("ANNOTATOR_PORT", "5106")
    start = place_of_interest([25000, 7500], 2500)
    assert start == 2.0 and place_of_interest([], 2500) is None and place_of_interest([1000], 2500) == 0.0
    assert annotator_url("round1%2Fa.wav", start) == \
        "http://127.0.0.1:5106/annotate?recording=round1%252Fa.wav&start=2"
    monkeypatch.setenv("SONGEXPLORER_ANNOTATOR_URL", "http://lab:80/annotate/")
    assert annotator_url("a.wav", 1.25, width_s=4) == "http://lab:80/annotate?recording=a.wav&start=1.25&width=4"
