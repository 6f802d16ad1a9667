"""How this project declares and routes Celery tasks; the tasks themselves live in their apps."""
