from meshkit import run_service
from services.order.app import setup

run_service("order", setup)
