"""Small builders shared by several test files (pytest puts this folder on sys.path)."""

import torch


def token_inputs(seed: int = 0, batch: int = 3, length: int = 10):
    """Seeded (input_ids, attention_mask, token_type_ids) for a BERT pair model; row 0 is half padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 3000, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, length // 2 :] = 0
    return ids, mask, torch.zeros_like(ids)


def tiny_cross_encoder_from(folder):
    """A seeded CrossEncoder over the tiny BERT saved in ``folder``, in eval mode."""
    from transformers import AutoModel

    from recbook.models.cross_encoder import CrossEncoder

    torch.manual_seed(0)
    return CrossEncoder(AutoModel.from_pretrained(folder)).eval()


def exit_2_one_line(argv, capsys, *expected):
    """Run ``recbook.cli.main(argv)``: it must exit with code 2 and one line on stderr (no traceback) holding each of
    ``expected``. Returns that line."""
    from recbook import cli

    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def load_tool(name: str):
    """``tools/<name>.py`` as a module (``tools`` is not a package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
