"""Share links: the state survives the round trip through the link, and the page's load event
puts it back into the tab's controls; a damaged link gets a message, not a traceback."""
from types import SimpleNamespace

import pytest
import torch

from facevae.share import ShareError, decode_state, encode_state, latent_text, text_latent


def test_a_latent_and_its_edits_survive_the_link():
    z = torch.randn(200, generator=torch.Generator().manual_seed(0))
    state = dict(tab="explore", z=latent_text(z), attributes={"Smiling": 1.5}, dimensions={"39": -2.0}, pcs=[0.5, 0, 0])
    text = encode_state(state)
    assert len(text) < 1000 and text.replace("-", "").replace("_", "").isalnum()  # URL-safe as it is
    back = decode_state(text)
    assert back["attributes"] == {"Smiling": 1.5} and back["dimensions"] == {"39": -2.0}
    assert torch.allclose(text_latent(back["z"], 200), z, atol=2e-3 * z.abs().max())  # float16


@pytest.mark.parametrize("text, message", [
    ("", "empty or too long"), ("x" * 5000, "empty or too long"), ("not-a-link!!", "damaged"),
    (encode_state({"no": "tab"}), "not one of FaceVAE's"),
])
def test_damaged_links_get_a_plain_message(text, message):
    with pytest.raises(ShareError, match=message):
        decode_state(text)


def test_a_latent_of_another_size_is_refused():
    with pytest.raises(ShareError, match="these weights need 200"):
        text_latent(latent_text(torch.zeros(16)), 200)


def test_the_load_event_restores_each_tab_from_its_link(monkeypatch):
    import app
    from facevae import load_model
    from facevae.pipeline import FacePipeline

    pipeline = FacePipeline(load_model())
    captured = {}
    original = app.restore_from_link

    def capture(*args):  # build_demo's own load handler and the tabs it restores
        captured["restore"], captured["outputs"] = result = original(*args)
        captured["tabs"] = args
        return result

    monkeypatch.setattr(app, "restore_from_link", capture)
    app.build_demo(pipeline)
    restore, outputs = captured["restore"], captured["outputs"]
    _, tabs, random, morph, explorer = captured["tabs"]

    def open_link(state):
        values = restore(SimpleNamespace(query_params={"share": encode_state(state)}))
        return dict(zip(outputs, values))

    shown = open_link(dict(tab="random", count=9, seed=2**70, temperature=0.5, prior="normal"))
    assert [shown[c] for c in random.inputs] == [9, 2**70 % 2**64, 0.5, "normal"]  # the same faces (seeded.seed_state)
    assert shown[tabs].selected == "random"

    z = pipeline.latent(None, 5)
    shown = open_link(dict(tab="explore", z=latent_text(z), attributes={"Smiling": 1.5}, dimensions={"7": 2.0},
                           pcs=[0.5] + [0.0] * 5))
    assert torch.allclose(shown[explorer.shared], z, atol=1e-2)
    assert shown[explorer.attribute_sliders["Smiling"]] == 1.5 and shown[explorer.dimensions] == [7]
    assert shown[explorer.dimension_sliders[0]]["value"] == 2.0 and shown[explorer.pc_sliders[0]] == 0.5

    shown = open_link(dict(tab="morph", a=latent_text(z), b=latent_text(-z), t=0.25, method="linear"))
    t, method, shared_a, shared_b = morph.inputs[4:]
    assert shown[t] == 0.25 and shown[method] == "linear" and torch.allclose(shown[shared_b], -z, atol=1e-2)

    for query in ({}, {"share": "damaged!"}):  # no link, or a broken one: the page as it is, no error
        values = restore(SimpleNamespace(query_params=query))
        assert all(v == {"__type__": "update"} for v in values), values
