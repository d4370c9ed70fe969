"""Sessions encrypted at rest: the store (memory here, Redis or any other in production) never holds
a readable value, and a value moved between sessions or fields opens nothing.

Usage:
    pip install -e '.[crypto]' uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    export SESSION_ENCRYPTION_KEYS="$(fastapi-sessions secret --encryption)"   # or, the same:
    #   python -c "import secrets,base64;print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"
    python examples/encrypted_app.py           # serves http://127.0.0.1:8000 (PORT=... to change)

    POST /login?user=alice&iban=DE89...   keeps a user name and a bank account number in the session
    GET  /                                shows the session, decrypted for this request
    GET  /stored                          what the store holds for this session: ciphertexts only
    POST /logout                          destroys the session

To rotate keys, put a new key first and keep the old one after it
(SESSION_ENCRYPTION_KEYS="new,old"); remove the old one once SESSION_MAX_AGE has passed. Without
SESSION_ENCRYPTION_KEYS the app refuses to start: this example is about encryption.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionSettings
from fastapi_sessions.stores.encrypted import EncryptedStore

settings = SessionSettings()
if not settings.encryption_keys:
    raise SystemExit("Set SESSION_ENCRYPTION_KEYS first (see the Usage in this file's docstring).")


class Account(BaseModel):
    user: str | None = None
    iban: str | None = None


sessions = SessionManager(Account, settings=settings)
app = FastAPI(title="fastapi_sessions: encrypted at rest")
sessions.install(app)
Session = Annotated[Account, Depends(sessions.get_session)]


@app.get("/")
async def show(session: Session) -> Account:
    return session


@app.get("/stored")
async def stored(request: Request, session: Session) -> dict[str, str]:
    """What the store itself holds for this session (a demo: never expose this in a real app)."""
    cookie = request.cookies.get(settings.cookie_name)
    verified = None if cookie is None else sessions.engine.signer.verify(cookie)
    store = sessions.store.inner if isinstance(sessions.store, EncryptedStore) else sessions.store
    record = None if verified is None else await store.load(verified[1])
    if record is None:
        raise HTTPException(404, "no stored session yet: POST /login first")
    return {name: value.decode() for name, value in record.fields.items()}


@app.post("/login")
async def login(
    user: Annotated[str, Query(min_length=1, max_length=64)],
    iban: Annotated[str, Query(min_length=5, max_length=34)],
    session: Session,
) -> RedirectResponse:
    sessions.regenerate(session)
    session.user = user
    session.iban = iban
    return RedirectResponse("/", status_code=303)


@app.post("/logout")
async def logout(session: Session) -> RedirectResponse:
    sessions.destroy(session)
    return RedirectResponse("/", status_code=303)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
