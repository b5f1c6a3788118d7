"""`python -m deeprc.images`: refresh containers/rendered/ (the recipe rendered with default arguments)."""

from deeprc.images.render import render_defaults

if __name__ == "__main__":
    for path in render_defaults():
        print(path)
