"""Container images: containers/recipe.yaml rendered and built (`deeprc-deploy build`).

recipe  the recipe's schema, loading, build arguments per variant
render  Containerfile and Apptainer .def from the Jinja2 templates in containers/
inputs  site wheels and CA certificates staged for the build (never kept in the image)
plan    runtime choice and BuildPlan: the exact commands of a build
build   running a plan with progress and a log; the built image's record
store   .deeprc/images.json, the latest record per variant
site    what a site config says about its image (runtime, image, variant, MPI)
cli     the click `build` command; `python -m deeprc.images` refreshes containers/rendered/
"""
