"""The two screens every volunteer-page browser test looks at: a 1280 x 800 desktop and a
360 x 740 touch phone (what most volunteers use)."""

SCREENS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 360, "height": 740},
        "has_touch": True,
        "is_mobile": True,
        "device_scale_factor": 2,
    },
}
