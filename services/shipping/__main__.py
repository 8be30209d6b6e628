from meshkit import run_service
from services.shipping.app import setup

run_service("shipping", setup)
