"""HTTP views, thin: they call services and render templates or JSON."""
