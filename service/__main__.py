"""``python -m service``: serve the API with settings from ``ARCHCAST_*`` environment variables."""

from service.main import serve

if __name__ == "__main__":
    serve()
