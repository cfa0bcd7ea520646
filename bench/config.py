"""What one bench run measures, and how long: the scenarios and the run's knobs."""

from __future__ import annotations

from dataclasses import dataclass

APPS = ("courtyard", "reference", "floor")
SECRET_KEY = "bench-secret-key-not-for-production-0123456789"
PASSWORD = "bench password 0123"  # every seeded account's password
ADMIN_EMAIL = "admin@bench.example"
USERS = 200  # seeded accounts besides the admin (the list pages over them)
APP_CPU = "0"  # the app under test
LOAD_CPU = "1"  # wrk
PORT = 8765  # `make bench` serves the apps side by side on PORT, PORT + 1, PORT + 2
# Sign-in throttling stays on, with limits no benchmark reaches (one client IP, one account).
LOGIN_LIMIT = "100000000/minute"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    method: str
    path: str
    body: str | None = None
    auth: str | None = None  # "user" or "admin": which access token to send
    connections: int = 32
    refresh_tokens: bool = False  # feed one distinct, unused refresh token per request
    bare_argon2: bool = False  # bare argon2 measured before each repetition and after the last


SCENARIOS = (
    Scenario("health_live", "GET", "/health/live"),
    Scenario("users_me", "GET", "/api/v1/users/me", auth="user"),
    Scenario("users_list", "GET", "/api/v1/users?limit=20", auth="admin"),
    Scenario("auth_refresh", "POST", "/api/v1/auth/refresh", refresh_tokens=True),
    Scenario(
        "uploads_presign",
        "POST",
        "/api/v1/uploads",
        body='{"filename": "photo.png", "content_type": "image/png", "size": 1024}',
        auth="user",
    ),
    Scenario(
        "auth_login",
        "POST",
        "/api/v1/auth/login",
        body='{"email": "user0@bench.example", "password": "' + PASSWORD + '"}',
        connections=4,
        bare_argon2=True,
    ),
)


@dataclass(frozen=True, slots=True)
class RunOptions:
    quick: bool
    warmup: float  # seconds of load per app before the measured rounds
    duration: float  # seconds per repetition (one per app and round)
    rounds: int  # each round measures every app once, in the order of APPS
    startup_runs: int
    argon2_seconds: float  # per bare argon2 measurement between login repetitions
    refresh_pool: int  # unused refresh tokens made before each refresh repetition

    @classmethod
    def of(cls, quick: bool) -> RunOptions:
        if quick:
            return cls(True, 1.0, 2.0, 2, 1, 2.0, 8000)
        return cls(False, 5.0, 6.0, 5, 3, 5.0, 40000)
