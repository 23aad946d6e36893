import pytest
import torch

from facevae import load_model
from facevae.model import FaceVAE
from train.average_weights import main as average_weights


def encoder_runs(tmp_path, count=2):
    """`count` models sharing one decoder, their encoders (and BatchNorm statistics) different."""
    torch.manual_seed(0)
    base = FaceVAE()
    folders = []
    for i in range(count):
        run = FaceVAE()
        run.load_state_dict(base.state_dict())
        with torch.no_grad():
            for name, tensor in run.named_parameters():
                if not name.startswith(("decoder.", "from_latent.")):
                    tensor.add_(0.01 * (i + 1) * torch.randn_like(tensor))
            for norm in run.encoder.modules():
                if isinstance(norm, torch.nn.BatchNorm2d):
                    norm.running_mean.fill_(float(i + 1))
        run.eval().save_pretrained(tmp_path / f"run{i}")
        folders.append(tmp_path / f"run{i}")
    return folders


def test_the_average_of_encoder_runs_keeps_the_decoder_and_remeasures_the_encoders_statistics(celeba_dir, tmp_path):
    folders = encoder_runs(tmp_path)
    average_weights(["--data", str(celeba_dir), "--out", str(tmp_path / "soup"), "--encoder-only", *map(str, folders)])
    runs = [load_model(f).state_dict() for f in folders]
    soup = load_model(tmp_path / "soup").state_dict()
    weights = [n for n in soup if n.startswith(("encoder.", "to_mu.", "to_logvar.")) and n.endswith(("weight", "bias"))]
    assert len(weights) > 10
    for name in weights:
        torch.testing.assert_close(soup[name], (runs[0][name] + runs[1][name]) / 2)
    assert all(torch.equal(soup[n], runs[0][n]) for n in soup if n.startswith(("decoder.", "from_latent.")))
    measured = [n for n in soup if n.startswith("encoder.") and n.endswith("running_mean")]
    # the runs' statistics were 1 and 2 everywhere: the soup's are the training faces' own
    assert measured and all(not torch.allclose(soup[n], torch.full_like(soup[n], 1.5)) for n in measured)


def test_runs_with_different_decoders_or_a_single_run_get_a_message(celeba_dir, tmp_path, capsys):
    folders = encoder_runs(tmp_path)
    other = FaceVAE().eval()
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(SystemExit):
        average_weights(["--data", str(celeba_dir), "--out", str(tmp_path / "soup"), "--encoder-only",
                         str(folders[0]), str(tmp_path / "other")])
    assert "decoders differ" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        average_weights(["--data", str(celeba_dir), "--out", str(tmp_path / "soup"), str(folders[0])])
    assert "at least two" in capsys.readouterr().err
    assert not (tmp_path / "soup").exists()
