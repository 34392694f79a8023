from django.shortcuts import render

from accounts.decorators import org_required


@org_required
def offer_list(request):
    return render(request, "offers/list.html", {})
