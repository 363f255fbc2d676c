"""Request bodies (pydantic models with limits) and the 422 answer that names the bad field."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from recbook.serve.settings import MAX_CANDIDATES, MAX_HISTORY, MAX_K


# ------------------------------------------------------------------ request and response bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


ItemIds = list[StrictInt]


class RecommendRequest(_Body):
    """Either a known ``user_id`` (its stored history) or an explicit ``history`` (item ids, oldest first)."""

    user_id: StrictInt | None = None
    history: ItemIds | None = Field(None, max_length=MAX_HISTORY)
    k: StrictInt = Field(10, ge=1, le=MAX_K)
    exclude_seen: StrictBool = True
    rerank: StrictBool = True  # False: retrieval only (the first stage alone)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.user_id is None) == (self.history is None):
            raise ValueError("give exactly one of user_id (a known user) or history (item ids, oldest first)")
        return self


class RerankRequest(_Body):
    history: ItemIds = Field(..., max_length=MAX_HISTORY)
    candidates: ItemIds = Field(..., min_length=1, max_length=MAX_CANDIDATES)


class ExplainRequest(_Body):
    history: ItemIds = Field(..., min_length=1, max_length=MAX_HISTORY)
    item_id: StrictInt


class ReloadRequest(_Body):
    bundle_dir: str = Field(..., min_length=1, max_length=4096)


# ------------------------------------------------------------------ 422 answers naming the field
class FieldError(Exception):
    """A request body that parses but names something the model does not know: a 422 in FastAPI's error format."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors)
        self.errors = errors


def _field_error(field_name: str, msg: str, bad: list | None = None) -> FieldError:
    locs = [["body", field_name, p] for p, _ in bad] if bad else [["body", field_name]]
    return FieldError([{"loc": loc, "msg": msg, "type": "value_error"} for loc in locs[:10]])


def _unprocessable(request: Request, errors: list[dict]) -> JSONResponse:
    """422 with every error's location, the fields named (``"history"``, ``"k"``, or ``"body"``) and the request id."""
    fields_ = sorted({".".join(str(p) for p in e["loc"][1:2]) or "body" for e in errors})
    return JSONResponse(status_code=422, content={"detail": errors, "fields": fields_, "request_id": request.state.request_id})



