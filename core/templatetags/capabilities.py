"""Template access to what capabilities declare (core/capabilities.py).

`{% product_panels product as panels %}` gives the product page's places, each a dict
with `slot`, `title`, `template` and `context` (only those with something to show)."""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def product_panels(context, product) -> list[dict]:
    from customers import registry

    request = context.get("request")
    panels = []
    for panel in registry.product_panels():
        content = panel.func(request=request, product=product)
        if content:
            panels.append(
                {
                    "slot": panel.slot,
                    "title": panel.title,
                    "template": content["template"],
                    "context": content.get("context", {}),
                }
            )
    return panels
