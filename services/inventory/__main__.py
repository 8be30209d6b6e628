from services.inventory.app import setup
from services.mesh import run_service

run_service("inventory", setup)
