from django.shortcuts import render

from accounts.decorators import org_required


@org_required
def loyalty_page(request):
    return render(request, "loyalty/page.html", {})
