from meshkit import run_service
from services.payment.app import setup

run_service("payment", setup)
