"""WSGI entry point for production servers: ``gunicorn 'backend.wsgi:app'`` (settings from the environment)."""
from backend import create_app

app = create_app()
