"""The anchor of M4: the smallest FastAPI JSON app, served by uvicorn as the services are."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
