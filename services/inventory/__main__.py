from meshkit import run_service
from services.inventory.app import setup

run_service("inventory", setup)
